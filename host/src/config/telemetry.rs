//! `[telemetry]`: where `airlock serve` sends its spans over OTLP/HTTP, and the service name
//! they carry. The standard OpenTelemetry variables override the file. Neither set: nothing is
//! exported.

use serde::Deserialize;

/// The path an OTLP/HTTP receiver takes traces at, below its base URL.
pub const TRACES_PATH: &str = "/v1/traces";

/// The service name spans carry unless the file or `OTEL_SERVICE_NAME` name another.
pub const DEFAULT_SERVICE_NAME: &str = "airlock";

/// The validated `[telemetry]` section, with the environment applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// The full URL spans are POSTed to (`BASE/v1/traces`); None: no export.
    pub traces_url: Option<String>,
    /// `service.name` of every exported span.
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            traces_url: None,
            service_name: DEFAULT_SERVICE_NAME.to_string(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    otlp_endpoint: Option<String>,
    service_name: Option<String>,
}

pub(super) fn build(raw: &RawTelemetry) -> Result<TelemetryConfig, String> {
    let mut c = TelemetryConfig::default();
    if let Some(base) = &raw.otlp_endpoint {
        c.traces_url = Some(traces_url("telemetry.otlp_endpoint", base)?);
    }
    if let Some(name) = &raw.service_name {
        c.service_name = service_name("telemetry.service_name", name)?;
    }
    Ok(c)
}

impl TelemetryConfig {
    /// The OpenTelemetry environment, which overrides the file: `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none` turn export off; `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is the
    /// full traces URL, `OTEL_EXPORTER_OTLP_ENDPOINT` a base URL (like `otlp_endpoint`);
    /// `OTEL_SERVICE_NAME` names the service. Empty variables count as unset.
    pub(super) fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        if let Some(url) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            self.traces_url = Some(check_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?);
        } else if let Some(base) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            self.traces_url = Some(traces_url("OTEL_EXPORTER_OTLP_ENDPOINT", &base)?);
        }
        if let Some(name) = var("OTEL_SERVICE_NAME") {
            self.service_name = service_name("OTEL_SERVICE_NAME", &name)?;
        }
        let off = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
            || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none"));
        if off {
            self.traces_url = None;
        }
        Ok(())
    }
}

/// `BASE/v1/traces` for a receiver's base URL (as the OTLP specification builds it from
/// `OTEL_EXPORTER_OTLP_ENDPOINT`).
fn traces_url(key: &str, base: &str) -> Result<String, String> {
    let base = check_url(key, base)?;
    if base.trim_end_matches('/').ends_with(TRACES_PATH) {
        return Err(format!(
            "{key}: give the receiver's base URL (such as http://127.0.0.1:4318); `{TRACES_PATH}` is appended"
        ));
    }
    Ok(format!("{}{TRACES_PATH}", base.trim_end_matches('/')))
}

/// An http(s) URL with a host and without credentials (those belong in
/// `OTEL_EXPORTER_OTLP_HEADERS`, which is never logged).
fn check_url(key: &str, text: &str) -> Result<String, String> {
    let text = text.trim();
    let u = url::Url::parse(text).map_err(|e| format!("{key}: not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!(
            "{key}: must be an http:// or https:// URL with a host"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "{key}: must not carry credentials (send them as headers: OTEL_EXPORTER_OTLP_HEADERS)"
        ));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(format!("{key}: must not have a query or a fragment"));
    }
    Ok(text.to_string())
}

fn service_name(key: &str, name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(format!(
            "{key}: must be 1 to 255 characters without control characters"
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(endpoint: Option<&str>, name: Option<&str>) -> RawTelemetry {
        RawTelemetry {
            otlp_endpoint: endpoint.map(str::to_string),
            service_name: name.map(str::to_string),
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn no_section_exports_nothing_and_names_the_service_airlock() {
        let c = build(&raw(None, None)).expect("valid");
        assert_eq!(c, TelemetryConfig::default());
        assert_eq!((c.traces_url, c.service_name.as_str()), (None, "airlock"));
    }

    #[test]
    fn the_endpoint_is_a_base_url_that_traces_path_is_appended_to() {
        let c = build(&raw(Some("http://127.0.0.1:4318/"), Some("airlock-eu"))).expect("valid");
        assert_eq!(
            c.traces_url.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(c.service_name, "airlock-eu");
        let e = build(&raw(Some("http://collector:4318/v1/traces"), None)).unwrap_err();
        assert!(e.contains("base URL"), "{e}");
    }

    #[test]
    fn bad_endpoints_and_names_are_refused_by_key() {
        for bad in [
            "collector:4318",
            "ftp://collector",
            "http://user:pw@collector:4318",
            "http://collector:4318?token=x",
            "not a url",
        ] {
            let e = build(&raw(Some(bad), None)).unwrap_err();
            assert!(e.starts_with("telemetry.otlp_endpoint: "), "{bad}: {e}");
            // A refused URL's credentials are not repeated in the message.
            assert!(!e.contains("pw@"), "{e}");
        }
        let e = build(&raw(None, Some(" "))).unwrap_err();
        assert!(e.starts_with("telemetry.service_name: "), "{e}");
    }

    #[test]
    fn the_opentelemetry_environment_overrides_the_file() {
        let file = || build(&raw(Some("http://file:4318"), Some("from-file"))).expect("valid");
        let mut c = file();
        c.apply_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://env:4318"),
            ("OTEL_SERVICE_NAME", "from-env"),
        ]))
        .expect("valid");
        assert_eq!(c.traces_url.as_deref(), Some("https://env:4318/v1/traces"));
        assert_eq!(c.service_name, "from-env");
        // The per-signal variable is the whole URL and wins over the base one.
        let mut c = file();
        c.apply_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://env:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:9999/custom",
            ),
        ]))
        .expect("valid");
        assert_eq!(c.traces_url.as_deref(), Some("http://traces:9999/custom"));
        // Without a section the variable alone turns export on; empty ones are unset.
        let mut c = TelemetryConfig::default();
        c.apply_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
            ("OTEL_SERVICE_NAME", ""),
        ]))
        .expect("valid");
        assert_eq!(c.traces_url.as_deref(), Some("http://env:4318/v1/traces"));
        assert_eq!(c.service_name, "airlock");
        let mut c = TelemetryConfig::default();
        let e = c
            .apply_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "env:4318")]))
            .unwrap_err();
        assert!(e.starts_with("OTEL_EXPORTER_OTLP_ENDPOINT: "), "{e}");
    }

    #[test]
    fn the_standard_switches_turn_export_off() {
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            let mut c = build(&raw(Some("http://file:4318"), None)).expect("valid");
            c.apply_env(env(&[off])).expect("valid");
            assert_eq!(c.traces_url, None, "{off:?}");
        }
        let mut c = build(&raw(Some("http://file:4318"), None)).expect("valid");
        c.apply_env(env(&[("OTEL_SDK_DISABLED", "false")]))
            .expect("valid");
        assert!(c.traces_url.is_some());
    }
}
