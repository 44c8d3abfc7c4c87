//! Native libraries behind `-sys` crates.
//!
//! Most `-sys` crates build their C library from bundled sources (zstd-sys, lz4-sys,
//! ring, libz-sys when cross-compiling) and need only a C compiler for the target,
//! which the zig backend provides. Some link a *system* library unless a feature
//! vendors it; for a static musl binary no such library exists on the build machine.
//! kiln provisions the ones it knows how to build (OpenSSL, from the `openssl-src`
//! sources, once per target, kept in the cache) and refuses the others with the two
//! fixes a user has. It also builds the allocator it links into musl binaries on
//! request (mimalloc).

mod archive;
mod mimalloc;
mod openssl;

pub use archive::{is_intact, pack, seal, unpack};
pub use mimalloc::{
    mimalloc_identity, mimalloc_library, provision_mimalloc, MIMALLOC_SYS_VERSION, MIMALLOC_VERSION,
};
pub use openssl::{clean_build_dirs, openssl_version, provision_openssl, OPENSSL_SRC_VERSION};

use kiln_diagnostics::{Error, Result};
use kiln_toolchain::Target;
use kiln_workspace::Dependency;
use std::path::{Path, PathBuf};

/// A `-sys` crate that links a system library unless one of its features vendors it.
struct SystemLib {
    krate: &'static str,
    library: &'static str,
    /// Features (or dependencies) that build the library from source.
    vendored: &'static [&'static str],
    /// The `<TRIPLE>_` prefixed variable that points the crate at a prebuilt library.
    dir_var: &'static str,
    provisionable: bool,
}

const SYSTEM_LIBS: &[SystemLib] = &[
    SystemLib {
        krate: "openssl-sys",
        library: "OpenSSL",
        vendored: &["vendored", "openssl-src"],
        dir_var: "OPENSSL_DIR",
        provisionable: true,
    },
    SystemLib {
        krate: "libsqlite3-sys",
        library: "SQLite",
        vendored: &[
            "bundled",
            "bundled-sqlcipher",
            "bundled-sqlcipher-vendored-openssl",
        ],
        dir_var: "SQLITE3_LIB_DIR",
        provisionable: false,
    },
    SystemLib {
        krate: "pq-sys",
        library: "libpq",
        vendored: &["bundled", "pq-src"],
        dir_var: "PQ_LIB_DIR",
        provisionable: false,
    },
    SystemLib {
        krate: "mysqlclient-sys",
        library: "libmysqlclient",
        vendored: &["bundled"],
        dir_var: "MYSQLCLIENT_LIB_DIR",
        provisionable: false,
    },
    SystemLib {
        krate: "curl-sys",
        library: "libcurl",
        vendored: &["static-curl"],
        dir_var: "CURL_DIR",
        provisionable: false,
    },
];

/// Whether a package name matters to [`check`]: a system-library `-sys` crate or a
/// package that vendors one.
pub fn is_relevant(name: &str) -> bool {
    SYSTEM_LIBS
        .iter()
        .any(|l| l.krate == name || l.vendored.contains(&name))
}

/// A native library a binary's build needs kiln to provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provision {
    /// The `-sys` crate that links it.
    pub krate: String,
    /// The library (`OpenSSL`).
    pub library: String,
    /// Who pulls the crate in.
    pub chain: Vec<String>,
}

/// The native libraries `deps` (one binary's build graph) need, or an error naming
/// the first one kiln can't provide (or, with `provision` off, may not), who pulls it
/// in, and the two fixes.
pub fn check(deps: &[Dependency], target: &Target, provision: bool) -> Result<Vec<Provision>> {
    let mut out = Vec::new();
    for lib in SYSTEM_LIBS {
        let Some(dep) = deps.iter().find(|d| d.name == lib.krate) else {
            continue;
        };
        let vendored = lib
            .vendored
            .iter()
            .any(|v| dep.features.iter().any(|f| f == v) || deps.iter().any(|d| d.name == *v));
        if vendored {
            continue;
        }
        let var = format!("{}_{}", target.env_name(), lib.dir_var);
        if std::env::var_os(&var).is_some() {
            continue;
        }
        if lib.provisionable && provision {
            out.push(Provision {
                krate: lib.krate.into(),
                library: lib.library.into(),
                chain: dep.chain.clone(),
            });
            continue;
        }
        let why = if lib.provisionable {
            "which kiln's `provision-native = false` stops it from building"
        } else {
            "which kiln can't provide"
        };
        return Err(Error::environment(format!(
            "`{}` links the system {} library, {why} for {} (pulled in by {})",
            lib.krate,
            lib.library,
            target.triple,
            dep.chain.join(" -> ")
        ))
        .hint(format!(
            "enable its `{feature}` feature so it builds {} from source: `cargo add -p {} {}@{} --features {feature}` (the version already locked)",
            lib.library, dep.nearest_member, lib.krate, dep.version, feature = lib.vendored[0]
        ))
        .hint(format!("or build {} for {} yourself and set `{var}` to its install prefix", lib.library, target.triple)));
    }
    Ok(out)
}

/// Version of kiln's recipe for building provisioned libraries; bump it whenever the
/// recipe changes what it produces. 2: sources pinned by a lockfile, prefixes sealed.
/// 3: no debug info (a third of the size), flags fixed whatever the environment says.
pub const RECIPE_VERSION: u32 = 3;

/// The source version of the library kiln provisions for `provision`: with the recipe
/// and the target, its identity in cache keys (never where it is installed).
pub fn source_version(provision: &Provision) -> &'static str {
    match provision.krate.as_str() {
        "openssl-sys" => OPENSSL_SRC_VERSION,
        _ => "",
    }
}

/// The names of the variables [`env`] sets for `target`: kiln keys the library by its
/// identity instead of their values, which hold local paths.
pub fn env_names(provision: &Provision, target: &Target) -> Vec<String> {
    env(provision, target, Path::new(""))
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Where a provisioned library for `target` lives under `root`, named by the inputs
/// that decide its content (so a new `openssl-src` or target gets a new directory).
pub fn prefix(root: &Path, provision: &Provision, target: &Target) -> PathBuf {
    let key = kiln_fs::sha256_hex(
        format!(
            "{}-{}-{}-v{RECIPE_VERSION}",
            provision.krate,
            target.triple,
            source_version(provision)
        )
        .as_bytes(),
    );
    root.join(format!(
        "{}-{}-{}",
        provision.library.to_lowercase(),
        target.triple,
        &key[..16]
    ))
}

/// The cache key of a provisioned library: what decides its bytes (the crate and its
/// source version, the target, kiln's recipe, the C compiler's version), never where
/// it is installed, so every machine of a team computes the same one.
pub fn cache_key(provision: &Provision, target: &Target, compiler: &str) -> String {
    kiln_fs::sha256_hex(
        format!(
            "kiln-native-v1\n{}\n{}\n{}\nrecipe {RECIPE_VERSION}\n{compiler}",
            provision.krate,
            target.triple,
            source_version(provision)
        )
        .as_bytes(),
    )
}

/// The environment the `-sys` crate reads to use the provisioned library at `prefix`.
pub fn env(provision: &Provision, target: &Target, prefix: &Path) -> Vec<(String, String)> {
    match provision.krate.as_str() {
        "openssl-sys" => vec![
            (
                format!("{}_OPENSSL_DIR", target.env_name()),
                prefix.display().to_string(),
            ),
            (format!("{}_OPENSSL_STATIC", target.env_name()), "1".into()),
        ],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, features: &[&str]) -> Dependency {
        Dependency {
            name: name.into(),
            version: "0.7.5".into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            chain: vec!["app".into(), "native-tls".into(), name.into()],
            nearest_member: "app".into(),
        }
    }

    #[test]
    fn openssl_without_vendored_is_provisioned_and_vendored_is_left_alone() {
        let arm = Target::parse("arm64").unwrap();
        let found = check(&[dep("openssl-sys", &[])], &arm, true).unwrap();
        assert_eq!(found[0].library, "OpenSSL");
        assert!(check(&[dep("openssl-sys", &["vendored"])], &arm, true)
            .unwrap()
            .is_empty());
        assert!(check(
            &[dep("openssl-sys", &[]), dep("openssl-src", &[])],
            &arm,
            true
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn provisioning_switched_off_turns_openssl_into_the_error_with_both_fixes() {
        let err = check(
            &[dep("openssl-sys", &[])],
            &Target::parse("arm64").unwrap(),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("provision-native = false"));
        assert!(err.hints()[0].contains("vendored"));
        assert!(err.hints()[1].contains("AARCH64_UNKNOWN_LINUX_MUSL_OPENSSL_DIR"));
    }

    #[test]
    fn an_unprovisionable_library_names_the_crate_the_chain_and_both_fixes() {
        let err = check(
            &[dep("libsqlite3-sys", &[])],
            &Target::parse("amd64").unwrap(),
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("`libsqlite3-sys`"));
        assert!(err
            .to_string()
            .contains("app -> native-tls -> libsqlite3-sys"));
        assert!(
            err.hints()[0].contains("`cargo add -p app libsqlite3-sys@0.7.5 --features bundled`")
        );
        assert!(err.hints()[1].contains("X86_64_UNKNOWN_LINUX_MUSL_SQLITE3_LIB_DIR"));
    }
}
