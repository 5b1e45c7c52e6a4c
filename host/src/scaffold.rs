//! `airlock new connector NAME`: generates a connector crate from the templates in
//! `host/templates/connector/` (compiled into the binary).
//!
//! The crate depends on `airlock-sdk` by path. By default that is the `sdk/` directory of the
//! Airlock checkout this binary was built from (`CARGO_MANIFEST_DIR/../sdk`); `--sdk-path` (or
//! `AIRLOCK_SDK_PATH`) points elsewhere. The path is written relative to the new crate when both
//! sit in the same checkout, absolute otherwise. When the SDK's workspace has a `Cargo.lock`, it
//! is copied into the crate so the connector builds with the exact dependency versions the SDK
//! was tested with (and needs no registry look-up for them); Cargo prunes what the crate does not
//! use on the first build.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, bail};

const CARGO_TOML: &str = include_str!("../templates/connector/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/connector/lib.rs.tmpl");
const README: &str = include_str!("../templates/connector/README.md.tmpl");
const EXAMPLE_CONFIG: &str = include_str!("../templates/connector/airlock.example.toml.tmpl");
const GITIGNORE: &str = include_str!("../templates/connector/gitignore.tmpl");

/// The SDK of the checkout this binary was built from.
pub fn default_sdk_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")
}

/// What was generated.
#[derive(Debug)]
pub struct Generated {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// The SDK path as written into Cargo.toml.
    pub sdk_dependency: String,
    /// The name of the built component: `target/wasm32-wasip2/release/{wasm_name}`.
    pub wasm_name: String,
}

/// Checks a connector name: lowercase ASCII letters, digits and single `-` between them,
/// starting with a letter (it becomes the crate name and the `info().name`).
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        bail!(
            "invalid connector name `{name}`: use lowercase letters, digits and single hyphens, \
             starting with a letter (e.g. `acme-wiki`)"
        );
    }
    const RESERVED: &[&str] = &["airlock", "airlock-sdk", "test", "core", "std", "alloc"];
    if RESERVED.contains(&name) {
        bail!("invalid connector name `{name}`: it clashes with a crate the build needs");
    }
    Ok(())
}

/// `acme-wiki` → `AcmeWiki`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut c = part.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Absolute, with `.` and `..` resolved lexically (the target directory does not exist yet).
fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// The SDK path as the new crate's manifest names it: relative when the crate is inside the
/// checkout the SDK belongs to (the directory holding `sdk/`), so the checkout can move as a
/// whole; absolute otherwise (a crate elsewhere that shares only `/home` with the checkout
/// would break as soon as either moved).
fn sdk_dependency_path(crate_dir: &Path, sdk: &Path) -> PathBuf {
    match sdk.parent() {
        Some(checkout) if crate_dir.starts_with(checkout) => {
            relative(crate_dir, sdk).unwrap_or_else(|| sdk.to_path_buf())
        }
        _ => sdk.to_path_buf(),
    }
}

/// `to` relative to `from`, when both share a prefix below the filesystem root.
fn relative(from: &Path, to: &Path) -> Option<PathBuf> {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    // Only the root in common: an absolute path reads better.
    if common <= 1 {
        return None;
    }
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    Some(rel)
}

fn toml_string(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Generates the crate `name` in `dir` (default `./NAME`) against the SDK at `sdk` (default
/// [`default_sdk_path`]). Refuses to touch an existing path.
pub fn new_connector(
    name: &str,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> anyhow::Result<Generated> {
    validate_name(name)?;
    let dir = absolute(dir.unwrap_or_else(|| Path::new(name)))?;
    if dir.exists() || dir.is_symlink() {
        bail!(
            "{} already exists; `airlock new connector` never overwrites anything: choose another \
             name or --dir, or remove it first",
            dir.display()
        );
    }
    let sdk_given = sdk.is_some();
    let sdk = sdk.map(Path::to_path_buf).unwrap_or_else(default_sdk_path);
    let sdk = std::fs::canonicalize(&sdk)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no airlock-sdk crate at {}{}; pass --sdk-path PATH to the `sdk` directory of an \
                 Airlock checkout",
                sdk.display(),
                if sdk_given {
                    ""
                } else {
                    " (the checkout this binary was built from)"
                }
            )
        })?;
    let manifest = std::fs::read_to_string(sdk.join("Cargo.toml"))
        .with_context(|| format!("cannot read {}", sdk.join("Cargo.toml").display()))?;
    if !manifest.contains("name = \"airlock-sdk\"") {
        bail!(
            "{} is not the airlock-sdk crate (its Cargo.toml names another package)",
            sdk.display()
        );
    }
    let sdk_dependency = sdk_dependency_path(&dir, &sdk).display().to_string();
    let crate_name = name.replace('-', "_");
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{crate_name}}", &crate_name)
            .replace("{{type_name}}", &type_name(name))
            .replace("{{sdk_path}}", &toml_string(&sdk_dependency))
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from("src/lib.rs"), fill(LIB_RS)),
        (PathBuf::from("README.md"), fill(README)),
        (PathBuf::from("airlock.example.toml"), fill(EXAMPLE_CONFIG)),
        (PathBuf::from(".gitignore"), fill(GITIGNORE)),
    ];
    // Pin the dependency versions the SDK was built and tested with.
    if let Some(lock) = sdk
        .parent()
        .map(|root| root.join("Cargo.lock"))
        .filter(|l| l.is_file())
        && let Ok(text) = std::fs::read_to_string(&lock)
    {
        files.push((PathBuf::from("Cargo.lock"), text));
    }
    // Create the directory itself atomically-ish: `create_dir` fails if it appeared meanwhile.
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::create_dir(dir.join("src"))?;
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(&rel);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(rel);
    }
    Ok(Generated {
        dir,
        files: written,
        sdk_dependency,
        wasm_name: format!("{crate_name}.wasm"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(validate_name("acme-wiki2").is_ok());
        for bad in [
            "",
            "Acme",
            "2wiki",
            "acme_wiki",
            "acme-",
            "a--b",
            "airlock",
            "../x",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(type_name("acme-wiki2"), "AcmeWiki2");
    }

    #[test]
    fn relative_paths_inside_one_tree() {
        assert_eq!(
            relative(Path::new("/r/connectors/demo"), Path::new("/r/sdk")),
            Some(PathBuf::from("../../sdk"))
        );
        assert_eq!(relative(Path::new("/tmp/demo"), Path::new("/r/sdk")), None);
    }

    #[test]
    fn a_crate_outside_the_checkout_names_the_sdk_by_absolute_path() {
        let sdk = Path::new("/home/u/airlock/sdk");
        assert_eq!(
            sdk_dependency_path(Path::new("/home/u/airlock/connectors/acme"), sdk),
            PathBuf::from("../../sdk")
        );
        // Shares `/home/u` with the checkout, but is not inside it.
        assert_eq!(
            sdk_dependency_path(Path::new("/home/u/projects/acme"), sdk),
            PathBuf::from("/home/u/airlock/sdk")
        );
        assert_eq!(
            sdk_dependency_path(Path::new("/tmp/acme"), sdk),
            PathBuf::from("/home/u/airlock/sdk")
        );
    }

    #[test]
    fn refuses_an_existing_directory_and_leaves_it_alone() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("demo");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("keep.txt"), "mine").expect("write");
        let e = new_connector("demo", Some(&dir), None).expect_err("must refuse");
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.join("keep.txt")).expect("read"),
            "mine"
        );
    }

    #[test]
    fn generates_every_file_with_placeholders_filled() {
        let tmp = tempfile::tempdir().expect("tmp");
        let g = new_connector("acme-wiki", Some(&tmp.path().join("w")), None).expect("new");
        for f in &g.files {
            let text = std::fs::read_to_string(g.dir.join(f)).expect("read");
            assert!(
                !text.contains("{{"),
                "{} has an unfilled placeholder",
                f.display()
            );
        }
        let lib = std::fs::read_to_string(g.dir.join("src/lib.rs")).expect("lib");
        assert!(lib.contains("export_connector!(AcmeWiki)"));
        assert_eq!(g.wasm_name, "acme_wiki.wasm");
    }

    #[test]
    fn a_missing_sdk_path_is_a_clear_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = new_connector(
            "demo",
            Some(&tmp.path().join("demo")),
            Some(&tmp.path().join("nowhere")),
        )
        .expect_err("no sdk");
        assert!(e.to_string().contains("--sdk-path"), "{e}");
        assert!(!tmp.path().join("demo").exists());
    }
}
