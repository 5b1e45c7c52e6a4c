//! The host's modules stand in layers, and an import may only point down (or sideways within a
//! layer) and never close a circle. This test reads `host/src` the way a newcomer would, from the
//! `use crate::…`, `crate::…` and `super::…` paths in each file (tests and comments left out),
//! and names every import that breaks the rule. Run it with `--nocapture` to print the map.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. A module is placed by its first path segment.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves: text, metrics, the model, limits, signatures",
        &[
            "scrub",
            "metrics",
            "untrusted_text",
            "integrity",
            "logging",
            "limits",
            "fair_slots",
            "model",
            "scaffold",
            "tls_errors",
        ],
    ),
    ("the store", &["store"]),
    (
        "capabilities: the gate and what it lends",
        &["capabilities", "cassette"],
    ),
    (
        "the config file, parsed into each part's types",
        &["config"],
    ),
    ("running components", &["runtime"]),
    ("work over loaded connectors", &["sync", "search"]),
    ("the assembled daemon", &["app"]),
    (
        "services over the daemon",
        &[
            "approvals",
            "proxy",
            "webhooks",
            "inbound",
            "subscriptions",
            "conformance",
            "scheduler",
            "reload",
            "integrity_cli",
            "record",
            "telemetry",
        ],
    ),
    ("the faces: REST and MCP", &["api", "mcp"]),
    ("the listener", &["server"]),
];

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS.iter().position(|(_, ms)| ms.contains(&top))
}

/// `host/src/a/b.rs` → `a::b`; `a/mod.rs` → `a`.
fn module_name(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    Some(parts.join("::"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its `#[cfg(test)] mod tests` and without comments.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Every path written after `prefix` (`crate::` or `super::`), with `{a, b::c}` groups expanded
/// one level deep (enough for this code base's `use` lines).
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let head: String = rest.chars().take_while(|c| is_path_char(*c)).collect();
        let after = &rest[head.len()..];
        if after.starts_with('{') && (head.is_empty() || head.ends_with("::")) {
            let group = &after[1..after.find('}').unwrap_or(after.len() - 1).max(1)];
            for item in group.split(',') {
                let item: String = item
                    .trim()
                    .chars()
                    .take_while(|c| is_path_char(*c))
                    .collect();
                if !item.is_empty() {
                    out.push(format!("{head}{item}"));
                }
            }
        } else if !head.is_empty() {
            out.push(head.trim_end_matches(':').to_string());
        }
    }
    out
}

/// The longest known module that `path` starts with.
fn resolve(path: &str, modules: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    (1..=segs.len())
        .rev()
        .map(|n| segs[..n].join("::"))
        .find(|m| modules.contains(m))
}

/// module → the modules it imports.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut modules = BTreeSet::new();
    let mut code = BTreeMap::new();
    for f in &files {
        let Some(m) = module_name(&src, f) else {
            continue;
        };
        // The binary's `main` and its `cli` commands sit above everything; `lib` only declares.
        if m == "main" || m == "lib" || m.starts_with("cli") {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read a source file");
        modules.insert(m.clone());
        code.insert(m, code_of(&text));
    }
    let mut deps = BTreeMap::new();
    for (m, text) in &code {
        let mut to = BTreeSet::new();
        for p in paths_after(text, "crate::") {
            if let Some(t) = resolve(&p, &modules) {
                to.insert(t);
            }
        }
        // `super::x` from `a::b` (a file) or from `a` (a mod.rs: its children).
        let parent: Vec<&str> = m.split("::").collect();
        let base = &parent[..parent.len() - 1];
        for p in paths_after(text, "super::") {
            let full = base
                .iter()
                .copied()
                .chain(p.split("::"))
                .collect::<Vec<_>>()
                .join("::");
            if let Some(t) = resolve(&full, &modules) {
                to.insert(t);
            }
        }
        to.retain(|t| t != m && !t.starts_with(&format!("{m}::")));
        deps.insert(m.clone(), to);
    }
    deps
}

/// Tarjan's strongly connected components of size > 1.
fn circles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        deps: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        let deps = t.deps;
        for w in deps.get(v).into_iter().flatten() {
            if !t.index.contains_key(w.as_str()) {
                visit(t, w);
                let lw = t.low[w.as_str()];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w.as_str()) {
                let iw = t.index[w.as_str()];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        deps,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in deps.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn every_host_module_has_a_layer_and_imports_only_downwards() {
    let deps = dependencies();
    assert!(deps.len() > 30, "found too few modules: {:?}", deps.keys());
    let mut wrong = Vec::new();
    for (m, to) in &deps {
        let Some(lm) = layer_of(m) else {
            wrong.push(format!("`{m}` has no layer: add it to LAYERS"));
            continue;
        };
        println!(
            "{m} -> {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        );
        for t in to {
            match layer_of(t) {
                Some(lt) if lt > lm => wrong.push(format!(
                    "`{m}` ({}) imports `{t}` ({}), a layer above it",
                    LAYERS[lm].0, LAYERS[lt].0
                )),
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_host_modules_import_each_other_in_a_circle() {
    let found = circles(&dependencies());
    assert!(found.is_empty(), "import circles: {found:?}");
}

#[test]
fn the_reader_sees_imports_in_use_groups_and_paths() {
    let code = "use crate::a::{b, c::D};\nlet x = crate::e::f(); super::g::h();";
    assert_eq!(
        paths_after(code, "crate::"),
        vec!["a::b", "a::c::D", "e::f"]
    );
    assert_eq!(paths_after(code, "super::"), vec!["g::h"]);
    let mut deps = BTreeMap::new();
    deps.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    deps.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(circles(&deps), vec![vec!["a".to_string(), "b".to_string()]]);
}
