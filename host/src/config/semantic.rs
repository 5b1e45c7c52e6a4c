//! `[search.semantic]`: which connector embeds texts for semantic and hybrid search, with which
//! model, and how documents are cut into chunks. Absent: semantic search is off.

use serde::Deserialize;

/// The validated `[search.semantic]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemanticConfig {
    /// A configured connector with an `embed` action (e.g. the OpenAI-compatible one).
    pub connector: String,
    /// The embedding model, passed to `embed` and stored with every vector (a new model
    /// re-embeds everything).
    pub model: String,
    /// Characters per chunk.
    pub chunk_chars: usize,
    /// Characters shared by consecutive chunks.
    pub chunk_overlap: usize,
    /// Texts per `embed` call.
    pub batch: usize,
    /// `index = "hnsw"` (the default): `airlock serve` keeps an approximate nearest-neighbour
    /// index in memory; `"exact"`: every query scans the permitted chunks.
    pub ann: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSearch {
    semantic: Option<RawSemantic>,
    /// `[search.ask]`, validated by `ask.rs`.
    pub(super) ask: Option<super::ask::RawAsk>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSemantic {
    connector: String,
    model: String,
    chunk_chars: Option<usize>,
    chunk_overlap: Option<usize>,
    batch: Option<usize>,
    index: Option<String>,
}

/// Validates the section; `connector_exists` says whether a `[[connector]]` has that id.
pub(super) fn build(
    raw: &RawSearch,
    connector_exists: impl Fn(&str) -> bool,
) -> Result<Option<SemanticConfig>, String> {
    let Some(s) = &raw.semantic else {
        return Ok(None);
    };
    if !connector_exists(&s.connector) {
        return Err(format!(
            "search.semantic.connector: no [[connector]] has id `{}` (it must name the connector whose `embed` action makes the vectors)",
            s.connector
        ));
    }
    if s.model.trim().is_empty() {
        return Err("search.semantic.model: must not be empty".into());
    }
    let chunk_chars = s.chunk_chars.unwrap_or(1200);
    if !(100..=20_000).contains(&chunk_chars) {
        return Err(format!(
            "search.semantic.chunk_chars: {chunk_chars} is out of range (100..=20000)"
        ));
    }
    let chunk_overlap = s.chunk_overlap.unwrap_or(200);
    if chunk_overlap * 2 > chunk_chars {
        return Err(format!(
            "search.semantic.chunk_overlap: {chunk_overlap} must be at most half of chunk_chars ({chunk_chars})"
        ));
    }
    let batch = s.batch.unwrap_or(64);
    if !(1..=2048).contains(&batch) {
        return Err(format!(
            "search.semantic.batch: {batch} is out of range (1..=2048)"
        ));
    }
    let ann = match s.index.as_deref().unwrap_or("hnsw") {
        "hnsw" => true,
        "exact" => false,
        other => {
            return Err(format!(
                "search.semantic.index: `{other}` is not one of `hnsw`, `exact`"
            ));
        }
    };
    Ok(Some(SemanticConfig {
        connector: s.connector.clone(),
        model: s.model.trim().to_string(),
        chunk_chars,
        chunk_overlap,
        batch,
        ann,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<SemanticConfig>, String> {
        let raw: RawSearch = toml::from_str(text).map_err(|e| e.to_string())?;
        build(&raw, |id| id == "openai")
    }

    #[test]
    fn absent_is_off_and_defaults_apply() {
        assert_eq!(parse("").unwrap(), None);
        let c = parse("[semantic]\nconnector = \"openai\"\nmodel = \"m\"")
            .unwrap()
            .unwrap();
        assert_eq!((c.chunk_chars, c.chunk_overlap, c.batch), (1200, 200, 64));
        assert!(c.ann, "the approximate index is on by default");
    }

    #[test]
    fn an_unknown_connector_or_bad_sizes_are_refused() {
        let e = parse("[semantic]\nconnector = \"nope\"\nmodel = \"m\"").unwrap_err();
        assert!(e.contains("no [[connector]] has id `nope`"), "{e}");
        assert!(parse("[semantic]\nconnector = \"openai\"\nmodel = \" \"").is_err());
        let overlap = "[semantic]\nconnector = \"openai\"\nmodel = \"m\"\nchunk_chars = 200\nchunk_overlap = 150";
        assert!(parse(overlap).is_err());
        assert!(parse("[semantic]\nconnector = \"openai\"\nmodel = \"m\"\nbatch = 0").is_err());
        let exact = "[semantic]\nconnector = \"openai\"\nmodel = \"m\"\nindex = \"exact\"";
        assert!(!parse(exact).unwrap().unwrap().ann);
        let e = parse("[semantic]\nconnector = \"openai\"\nmodel = \"m\"\nindex = \"ivf\"")
            .unwrap_err();
        assert!(e.contains("search.semantic.index"), "{e}");
    }
}
