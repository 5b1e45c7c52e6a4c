//! `[search.ask]`: which connector (or route) answers questions from retrieved passages, how
//! many passages it gets and how long each is. Absent: the `ask` route and MCP tool are off.

use serde::Deserialize;

/// The validated `[search.ask]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskConfig {
    /// A connector or route with a `chat` action (the OpenAI-compatible connector, or a route
    /// over several providers).
    pub connector: String,
    /// How passages are found: `keyword`, `semantic` or `hybrid` (the default: `hybrid` with
    /// `[search.semantic]`, `keyword` without).
    pub mode: String,
    /// Passages (one per document) given to the model.
    pub passages: usize,
    /// Characters per passage.
    pub passage_chars: usize,
    /// Most tokens of the answer (None: the provider's default).
    pub max_completion_tokens: Option<u64>,
    /// The instructions the model gets before the passages (None: the built-in ones).
    pub instructions: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAsk {
    connector: String,
    mode: Option<String>,
    passages: Option<usize>,
    passage_chars: Option<usize>,
    max_completion_tokens: Option<u64>,
    instructions: Option<String>,
}

/// Validates the section; `chat_target_exists` says whether a `[[connector]]` or `[[route]]` has
/// that id, `semantic` whether `[search.semantic]` is configured.
pub(super) fn build(
    raw: Option<&RawAsk>,
    chat_target_exists: impl Fn(&str) -> bool,
    semantic: bool,
) -> Result<Option<AskConfig>, String> {
    let Some(a) = raw else {
        return Ok(None);
    };
    if !chat_target_exists(&a.connector) {
        return Err(format!(
            "search.ask.connector: no [[connector]], and no [[route]] of the `chat` action, has id `{}` (it must name the one whose `chat` action answers)",
            a.connector
        ));
    }
    let default_mode = if semantic { "hybrid" } else { "keyword" };
    let mode = a.mode.as_deref().unwrap_or(default_mode);
    match mode {
        "keyword" => {}
        "semantic" | "hybrid" if semantic => {}
        "semantic" | "hybrid" => {
            return Err(format!(
                "search.ask.mode: `{mode}` needs [search.semantic] (or use `keyword`)"
            ));
        }
        other => {
            return Err(format!(
                "search.ask.mode: `{other}` is not one of `keyword`, `semantic`, `hybrid`"
            ));
        }
    }
    let passages = a.passages.unwrap_or(5);
    if !(1..=20).contains(&passages) {
        return Err(format!(
            "search.ask.passages: {passages} is out of range (1..=20)"
        ));
    }
    let passage_chars = a.passage_chars.unwrap_or(1200);
    if !(200..=8000).contains(&passage_chars) {
        return Err(format!(
            "search.ask.passage_chars: {passage_chars} is out of range (200..=8000)"
        ));
    }
    if a.max_completion_tokens == Some(0) {
        return Err("search.ask.max_completion_tokens: must be at least 1".into());
    }
    let instructions = a.instructions.as_deref().map(str::trim);
    if instructions == Some("") {
        return Err(
            "search.ask.instructions: must not be blank (leave it out for the built-in ones)"
                .into(),
        );
    }
    Ok(Some(AskConfig {
        connector: a.connector.clone(),
        mode: mode.to_string(),
        passages,
        passage_chars,
        max_completion_tokens: a.max_completion_tokens,
        instructions: instructions.map(str::to_string),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, semantic: bool) -> Result<Option<AskConfig>, String> {
        let raw: Option<RawAsk> = toml::from_str::<Option<RawAsk>>(text)
            .or_else(|_| toml::from_str::<RawAsk>(text).map(Some))
            .map_err(|e| e.to_string())?;
        build(raw.as_ref(), |id| id == "openai" || id == "llm", semantic)
    }

    #[test]
    fn defaults_follow_whether_semantic_search_is_on() {
        assert_eq!(build(None, |_| true, true).unwrap(), None);
        let c = parse("connector = \"openai\"", true).unwrap().unwrap();
        assert_eq!(
            (c.mode.as_str(), c.passages, c.passage_chars),
            ("hybrid", 5, 1200)
        );
        let c = parse("connector = \"llm\"", false).unwrap().unwrap();
        assert_eq!(c.mode, "keyword");
    }

    #[test]
    fn an_unknown_target_a_mode_without_embeddings_or_bad_sizes_are_refused() {
        let e = parse("connector = \"nope\"", true).unwrap_err();
        assert!(e.contains("has id `nope`"), "{e}");
        let e = parse("connector = \"openai\"\nmode = \"semantic\"", false).unwrap_err();
        assert!(e.contains("needs [search.semantic]"), "{e}");
        let e = parse("connector = \"openai\"\nmode = \"fuzzy\"", true).unwrap_err();
        assert!(e.contains("search.ask.mode"), "{e}");
        assert!(parse("connector = \"openai\"\npassages = 0", true).is_err());
        assert!(parse("connector = \"openai\"\npassage_chars = 50", true).is_err());
        assert!(parse("connector = \"openai\"\nmax_completion_tokens = 0", true).is_err());
        assert!(parse("connector = \"openai\"\ninstructions = \" \"", true).is_err());
        assert!(parse("connector = \"openai\"\ncolour = \"red\"", true).is_err());
    }
}
