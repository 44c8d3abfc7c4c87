//! Keys computed from plain data: no cargo, no build.

use super::*;
use crate::plan::NativeLib;
use kiln_fingerprint::diff;
use kiln_schema::{ConfigSource, Override};
use kiln_toolchain::Invocation;

/// A checkout of a two-package workspace at `<dir>/<name>`: `app` (a binary
/// member) and `lib` (a member it does not use).
fn checkout(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    for (f, text) in [
        ("app/Cargo.toml", "[package]\nname = \"app\"\n"),
        ("app/src/main.rs", "fn main() {}\n"),
        ("lib/src/lib.rs", "pub fn f() {}\n"),
    ] {
        std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        std::fs::write(root.join(f), text).unwrap();
    }
    root
}

fn context(root: &Path) -> KeyContext {
    let node = |name: &str, path: Option<PathBuf>| GraphNode {
        name: name.into(),
        version: "1.0.0".into(),
        path,
        source: String::new(),
        features: "default".into(),
    };
    let graph = DepGraph {
        nodes: [node("app", Some(root.join("app"))), node("serde", None)]
            .into_iter()
            .collect(),
    };
    let lock = HashMap::from([(
        ("serde".to_string(), "1.0.0".to_string()),
        (
            "registry+https://example.invalid/index".to_string(),
            "abc".to_string(),
        ),
    )]);
    let src = KeySources {
        root: root.to_path_buf(),
        files: FileHasher::new(root, &[root.join("target")], None, None),
        members: vec![("app".into(), "app".into()), ("lib".into(), "lib".into())],
        lock,
        shared: vec![(
            InputId::RootManifest,
            kiln_fingerprint::digest(b"[workspace]"),
        )],
        graphs: HashMap::from([((0, "aarch64-unknown-linux-musl".to_string()), graph)]),
        profile: "release".into(),
        features: InputValue::Features {
            features: vec![],
            all: false,
            no_default: false,
        },
        target_dir: root.join("target"),
        profile_dir: "release".into(),
        units: vec![("app".into(), vec!["app".into()])],
    };
    KeyContext::new(
        src,
        Toolchain {
            rustc: "rustc 1.95.0\nhost: x86_64-unknown-linux-gnu\n".into(),
            zig: Some("0.13.0".into()),
        },
    )
}

fn target() -> Target {
    Target::parse("arm64").unwrap()
}

/// The step as the plan makes it, with an OpenSSL provisioned under `native_root`
/// and the user's clang replaced by zig (configured in `.cargo/config.toml`).
fn step(native_root: &Path) -> Step {
    let t = target();
    let provision = kiln_native::Provision {
        krate: "openssl-sys".into(),
        library: "OpenSSL".into(),
        chain: vec!["app".into(), "openssl-sys".into()],
    };
    let prefix = kiln_native::prefix(native_root, &provision, &t);
    let mut env = kiln_native::env(&provision, &t, &prefix);
    env.push(("CARGO_PROFILE_RELEASE_STRIP".into(), "symbols".into()));
    Step {
        package: "app".into(),
        version: "1.0.0".into(),
        bins: vec!["app".into()],
        targets: vec![t.clone()],
        c_deps: vec![],
        graph_size: 2,
        invocation: Invocation {
            backend: Backend::Zig,
            program: "cargo".into(),
            args: vec![],
            env,
            overrides: vec![Override {
                target: Some(t.triple.clone()),
                setting: Setting::Linker,
                from: "clang".into(),
                to: Some("zig".into()),
                source: Some(ConfigSource::Workspace {
                    path: ".cargo/config.toml".into(),
                    table: None,
                }),
                reason: "zig links for the target".into(),
            }],
        },
        native: vec![NativeLib {
            provision,
            target: t,
            prefix,
        }],
        host_tools: Vec::new(),
    }
}

fn inputs(root: &Path, native_root: &Path) -> Inputs {
    context(root).inputs(0, &step(native_root), "app", &target(), None)
}

#[test]
fn keys_do_not_depend_on_where_the_checkout_or_the_native_libraries_are() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (ra, rb) = (checkout(a.path(), "ws"), checkout(b.path(), "other-name"));
    let one = inputs(&ra, &a.path().join("cache/native"));
    let two = inputs(&rb, &b.path().join("elsewhere/native"));
    assert_eq!(diff(&one, &two), vec![]);
    assert_eq!(one.key(), two.key());
    let json = serde_json::to_string(&one).unwrap();
    assert!(!json.contains(a.path().to_str().unwrap()), "{json}");
    assert!(json.contains("\"native\""), "{json}");
}

#[test]
fn only_files_of_packages_in_the_graph_count() {
    let d = tempfile::tempdir().unwrap();
    let root = checkout(d.path(), "ws");
    let native = d.path().join("native");
    let before = inputs(&root, &native);
    std::fs::write(root.join("lib/src/lib.rs"), "pub fn g() {}\n").unwrap();
    assert_eq!(before.key(), inputs(&root, &native).key());
    std::fs::write(root.join("app/src/main.rs"), "fn main() { }\n").unwrap();
    let after = inputs(&root, &native);
    let changes: Vec<String> = diff(&before, &after)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(changes, ["app/src/main.rs changed"]);
}

#[test]
fn learned_environment_is_keyed_by_digest_never_by_value() {
    let d = tempfile::tempdir().unwrap();
    let root = checkout(d.path(), "ws");
    let cache = LocalCache::open(Some(d.path().join("cache"))).unwrap();
    let ctx = context(&root);
    let node = ctx
        .graph(0, &target().triple)
        .nodes
        .iter()
        .next()
        .unwrap()
        .clone();
    let learned = Learned {
        env: ["PATH".to_string()].into_iter().collect(),
        ..Learned::default()
    };
    cache
        .set_learned(&ctx.learned_id(&node, &target().triple), &learned)
        .unwrap();
    let i = ctx.inputs(
        0,
        &step(&d.path().join("n")),
        "app",
        &target(),
        Some(&cache),
    );
    let value = std::env::var("PATH").unwrap();
    assert!(i
        .get(&InputId::Env {
            name: "PATH".into()
        })
        .is_some());
    let json = serde_json::to_string(&i).unwrap();
    assert!(!json.contains(&value), "an environment value was stored");
}
