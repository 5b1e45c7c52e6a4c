//! Test fixture: a valid wasm32-wasip2 component that exports `test:other/greeter@1.0.0` instead
//! of `airlock:connector/connector`. The host must refuse to load it as a connector.

wit_bindgen::generate!({ path: "wit", world: "other" });

struct Greeter;

impl exports::test::other::greeter::Guest for Greeter {
    fn greet(name: String) -> String {
        format!("hello, {name}")
    }
}

export!(Greeter);
