//! `POST /v1/ask` and the MCP tool `ask` end to end: the real `openai` component embeds and
//! chats through the gate against the OpenAI fake (whose chat answers a retrieval prompt
//! extractively, citing `[n]`). The answer cites only documents the caller may open; what the
//! caller may not open never reaches the model (checked in the prompts the fake received); a
//! secret value in a document is scrubbed before it is sent; nothing found means no model call.

use airlock_tests::*;
use fake_saas::RunningFake;
use fake_saas::openai::OpenAi;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const KEY: &str = "sk-ask-canary-4f1d9b";

/// The prompts of the chat completions the fake answered.
fn chat_prompts(oa: &RunningFake<OpenAi>) -> Vec<String> {
    oa.truth()
        .requests
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .filter_map(|r| r.prompt)
        .collect()
}

fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| c["id"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A tenant with a wiki of three pages (one only alice may open, one holding the embedding
/// key's value) and another tenant's page, all indexed for semantic search.
async fn wiki_env(oa: &RunningFake<OpenAi>) -> Env {
    let wiki = component("confluence");
    let env = Env::new(&format!(
        r#"{}
[[connector]]
id = "wiki"
component = "{w}"
[connector.settings]
base_url = "http://127.0.0.1:9"

[[connector]]
id = "beta-wiki"
component = "{w}"
tenant = "beta"
permissions = "tenant"
[connector.settings]
base_url = "http://127.0.0.1:9"
"#,
        semantic_config(&oa.base_url),
        w = wiki.display()
    ));
    env.set_secret("openai_key", KEY);
    store_docs(
        &env,
        "wiki",
        &[
            doc(
                "vault",
                "Server room access",
                "The vault code for the server room is 7341. Change it every quarter.",
                &["alice"],
            ),
            doc(
                "toner",
                "Printer care",
                "Canteen opens at noon. The printer toner is replaced every Monday by facilities.",
                &["alice", "bob"],
            ),
            doc(
                "rotation",
                "Key rotation log",
                &format!("The embedding key {KEY} was rotated in March. Rotation happens yearly."),
                &["alice", "bob"],
            ),
        ],
    );
    store_docs(
        &env,
        "beta-wiki",
        &[doc(
            "beta-vault",
            "Server room access",
            "Beta's vault code for the server room is 9999.",
            &[],
        )],
    );
    let a = start_in_process(&env).await;
    for c in ["wiki", "beta-wiki"] {
        a.index_semantic(c).await.expect("indexed");
    }
    a.flush();
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_answers_with_citations_of_documents_the_caller_may_open_and_nothing_else_reaches_the_model()
 {
    let oa = openai_fake(KEY).await;
    let env = wiki_env(&oa).await;
    let d = env.serve();
    let alice = env.create_token("alice", "default", &[], false);
    let bob = env.create_token("bob", "default", &[], false);
    let ask = |token: String, body: Value| {
        let url = format!("{}/v1/ask", d.base);
        async move { http_auth("POST", &url, Some(&token), Some(body.to_string())).await }
    };
    let question = "What is the vault code for the server room?";

    // Alice may open the vault page: the answer quotes it and cites it.
    let (s, a) = ask(alice.clone(), json!({"question": question})).await;
    assert_eq!(s, 200, "{a}");
    println!("alice: {a}");
    assert_eq!(a["grounded"], true, "{a}");
    assert!(a["answer"].as_str().unwrap_or("").contains("7341"), "{a}");
    assert_eq!(
        ids(&a, "citations").first().map(String::as_str),
        Some("vault"),
        "{a}"
    );
    assert_eq!(a["citations"][0]["connector"], "wiki");
    assert!(
        !ids(&a, "sources").contains(&"beta-vault".to_string()),
        "{a}"
    );

    // Bob may not: no citation of it, nothing of it in the answer or in any prompt he caused.
    oa.clear_log();
    let (s, b) = ask(bob.clone(), json!({"question": question})).await;
    assert_eq!(s, 200, "{b}");
    println!("bob: {b}");
    for forbidden in ["vault", "beta-vault"] {
        assert!(!ids(&b, "sources").contains(&forbidden.to_string()), "{b}");
        assert!(
            !ids(&b, "citations").contains(&forbidden.to_string()),
            "{b}"
        );
    }
    assert!(
        !b.to_string().contains("7341") && !b.to_string().contains("9999"),
        "{b}"
    );
    let prompts = chat_prompts(&oa);
    assert!(!prompts.is_empty(), "bob's question reached the model");
    for p in &prompts {
        assert!(!p.contains("7341") && !p.contains("9999"), "prompt: {p}");
    }

    // A page he may open answers his question, cited; the citation names how to open it.
    let (s, b) = ask(
        bob.clone(),
        json!({"question": "When is the printer toner replaced?"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b["answer"].as_str().unwrap_or("").contains("every Monday"),
        "{b}"
    );
    assert_eq!(ids(&b, "citations"), vec!["toner".to_string()], "{b}");
    let (s, doc) = http_auth(
        "GET",
        &format!("{}/v1/documents/wiki/page/toner", d.base),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(
        s, 200,
        "a citation is a document the caller may open: {doc}"
    );

    // A secret value in a document is scrubbed before the model sees it and in the answer.
    oa.clear_log();
    let (s, k) = ask(
        bob.clone(),
        json!({"question": "Which embedding key was rotated in March?", "mode": "keyword"}),
    )
    .await;
    assert_eq!(s, 200, "{k}");
    assert_eq!(ids(&k, "citations"), vec!["rotation".to_string()], "{k}");
    assert!(!k.to_string().contains(KEY), "{k}");
    let prompts = chat_prompts(&oa);
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    assert!(!prompts[0].contains(KEY), "prompt: {}", prompts[0]);

    // Nothing the caller may open matches: said so, and the model is not asked.
    oa.clear_log();
    let (s, n) = ask(
        bob.clone(),
        json!({"question": "zeppelin hangar blueprints", "mode": "keyword"}),
    )
    .await;
    assert_eq!(s, 200, "{n}");
    assert_eq!(n["grounded"], false, "{n}");
    assert_eq!(n["citations"], json!([]));
    assert!(
        chat_prompts(&oa).is_empty(),
        "no model call without passages"
    );

    // Bad input: a blank question, an unknown mode.
    let (s, e) = ask(bob.clone(), json!({"question": "  "})).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = ask(bob.clone(), json!({"question": "x", "mode": "vibes"})).await;
    assert_eq!(s, 400, "{e}");

    // The chat call is audited under the asker's name.
    let admin = env.create_token("ops", "default", &[], true);
    let (s, audit) = http_auth(
        "GET",
        &format!("{}/v1/audit?connector=embedder&limit=200", d.base),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(s, 200, "{audit}");
    let rows = audit["rows"].as_array().cloned().unwrap_or_default();
    assert!(
        rows.iter().any(
            |r| r["principal"].as_str().is_some_and(|p| p.contains("bob"))
                && r["path"] == "/v1/chat/completions"
        ),
        "a chat row names bob: {audit}"
    );
    assert!(!audit.to_string().contains(KEY), "no key in the audit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_ask_tool_answers_like_the_route_and_is_listed_only_when_configured() {
    let oa = openai_fake(KEY).await;
    let env = wiki_env(&oa).await;
    let d = env.serve();
    let bob = env.create_token("bob", "default", &[], false);
    let c = mcp_http_client(&d, &bob).await.expect("mcp session");
    let tools = c.list_all_tools().await.expect("tools/list");
    assert!(tools.iter().any(|t| t.name == "ask"), "ask is listed");
    let params = CallToolRequestParams::new("ask").with_arguments(
        json!({"question": "When is the printer toner replaced?"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let r = c.call_tool(params).await.expect("tools/call");
    let v = r.structured_content.clone().unwrap_or(Value::Null);
    assert_ne!(r.is_error, Some(true), "{r:?}");
    assert_eq!(ids(&v, "citations"), vec!["toner".to_string()], "{v}");
    let _ = c.cancel().await;
    drop(d);

    // Without [search.ask]: the tool is not listed and the route says how to turn it on.
    let plain = Env::new(
        &semantic_config(&oa.base_url).replace("[search.ask]\nconnector = \"embedder\"\n", ""),
    );
    let d = plain.serve();
    let bob = plain.create_token("bob", "default", &[], false);
    let c = mcp_http_client(&d, &bob).await.expect("mcp session");
    let tools = c.list_all_tools().await.expect("tools/list");
    assert!(!tools.iter().any(|t| t.name == "ask"), "ask is not listed");
    let _ = c.cancel().await;
    let (s, e) = http_auth(
        "POST",
        &format!("{}/v1/ask", d.base),
        Some(&bob),
        Some(json!({"question": "anything"}).to_string()),
    )
    .await;
    assert_eq!(s, 400, "{e}");
    assert!(e.to_string().contains("[search.ask]"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_semantic_search_a_documents_passage_is_its_chunk_nearest_the_question() {
    let oa = openai_fake(KEY).await;
    let wiki = component("confluence");
    let env = Env::new(&format!(
        r#"{}
[[connector]]
id = "wiki"
component = "{w}"
[connector.settings]
base_url = "http://127.0.0.1:9"
"#,
        semantic_config(&oa.base_url),
        w = wiki.display()
    ));
    env.set_secret("openai_key", KEY);
    // Two chunks (400 characters each in the test config): the first shares the question's
    // words ("notebook", "does", "not", "start") but is about stickers; the second answers it
    // in other words ("laptop won't boot"), which the embedding knows to be the same.
    let stickers = format!(
        "Stickers for the notebook lid: does the glossy sticker not start to curl? Order matte \
         stickers from the stationery catalogue. {}",
        "The stationery cupboard on floor two holds pens, folders, staplers and envelopes; ask \
         reception for the key. "
            .repeat(3)
    );
    let boot = "Laptop won't boot? Hold the power button for fifteen seconds, then boot again.";
    store_docs(
        &env,
        "wiki",
        &[doc(
            "desk",
            "Desk notes",
            &format!("{stickers}{boot}"),
            &["bob"],
        )],
    );
    let a = start_in_process(&env).await;
    let indexed = a.index_semantic("wiki").await.expect("indexed");
    assert_eq!(indexed.chunks, 2, "two chunks");
    a.flush();
    let d = env.serve();
    let bob = env.create_token("bob", "default", &[], false);
    // Keyword mode picks the window sharing most words (here the whole page); semantic mode the
    // chunk nearest the question's embedding.
    for (mode, nearest_only) in [("semantic", true), ("hybrid", true), ("keyword", false)] {
        oa.clear_log();
        let (s, r) = http_auth(
            "POST",
            &format!("{}/v1/ask", d.base),
            Some(&bob),
            Some(json!({"question": "My notebook does not start", "mode": mode}).to_string()),
        )
        .await;
        assert_eq!(s, 200, "{mode}: {r}");
        assert_eq!(ids(&r, "sources"), vec!["desk".to_string()], "{mode}: {r}");
        let prompts = chat_prompts(&oa);
        assert_eq!(prompts.len(), 1, "{mode}: {prompts:?}");
        assert!(
            prompts[0].contains("fifteen seconds"),
            "{mode}: {}",
            prompts[0]
        );
        assert_eq!(
            prompts[0].contains("glossy sticker"),
            !nearest_only,
            "{mode}: {}",
            prompts[0]
        );
    }
}
