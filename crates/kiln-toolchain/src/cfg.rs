//! `cfg(..)` expressions as they appear in cargo config keys
//! (`[target.'cfg(all(target_arch = "aarch64", target_env = "musl"))']`).
//!
//! Cargo evaluates them against `rustc --print cfg --target <triple>`. The keys real
//! configs use (arch, os, env, family, vendor, pointer width, endianness, crt-static)
//! follow from the triple, so kiln derives them instead of spawning rustc per target.

use crate::Target;

/// The cfg names and `name = "value"` pairs a target sets.
fn target_cfgs(target: &Target) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = target.triple.split('-').collect();
    let arch = match target.rust_arch() {
        a if a.starts_with("armv7") => "arm".to_string(),
        "riscv64gc" => "riscv64".to_string(),
        "i586" | "i686" => "x86".to_string(),
        a => a.to_string(),
    };
    let env = if parts.len() >= 4 {
        parts[3].trim_end_matches("eabihf").trim_end_matches("eabi")
    } else {
        ""
    };
    let width = match arch.as_str() {
        "x86" | "arm" => "32",
        _ => "64",
    };
    let endian = if arch == "s390x" { "big" } else { "little" };
    let mut cfgs = vec![
        ("target_arch", arch),
        (
            "target_os",
            parts.get(2).copied().unwrap_or("linux").to_string(),
        ),
        ("target_env", env.to_string()),
        (
            "target_vendor",
            parts.get(1).copied().unwrap_or("unknown").to_string(),
        ),
        ("target_family", "unix".to_string()),
        ("unix", String::new()),
        ("target_pointer_width", width.to_string()),
        ("target_endian", endian.to_string()),
    ];
    if env == "musl" {
        cfgs.push(("target_feature", "crt-static".to_string()));
    }
    cfgs
}

/// Whether a config table name like `cfg(target_os = "linux")` applies to `target`.
/// Anything that isn't a well-formed `cfg(..)` is false.
pub fn matches(key: &str, target: &Target) -> bool {
    let Some(inner) = key
        .trim()
        .strip_prefix("cfg(")
        .and_then(|s| s.strip_suffix(')'))
    else {
        return false;
    };
    let tokens = tokenize(inner);
    let cfgs = target_cfgs(target);
    let mut pos = 0;
    let result = eval(&tokens, &mut pos, &cfgs);
    result.is_some_and(|r| r && pos == tokens.len())
}

#[derive(Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    Eq,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' => out.push(Tok::Open),
            ')' => out.push(Tok::Close),
            ',' => out.push(Tok::Comma),
            '=' => out.push(Tok::Eq),
            '"' => {
                let mut v = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    v.push(c);
                }
                out.push(Tok::Str(v));
            }
            c if c.is_whitespace() => {}
            c => {
                let mut v = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' {
                        v.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Ident(v));
            }
        }
    }
    out
}

/// Evaluates one predicate at `pos`; None when malformed.
fn eval(t: &[Tok], pos: &mut usize, cfgs: &[(&str, String)]) -> Option<bool> {
    let Tok::Ident(name) = t.get(*pos)? else {
        return None;
    };
    *pos += 1;
    match (name.as_str(), t.get(*pos)) {
        ("all" | "any" | "not", Some(Tok::Open)) => {
            *pos += 1;
            let mut values = Vec::new();
            while t.get(*pos) != Some(&Tok::Close) {
                values.push(eval(t, pos, cfgs)?);
                match t.get(*pos)? {
                    Tok::Comma => *pos += 1,
                    Tok::Close => {}
                    _ => return None,
                }
            }
            *pos += 1;
            match name.as_str() {
                "all" => Some(values.iter().all(|v| *v)),
                "any" => Some(values.iter().any(|v| *v)),
                _ if values.len() == 1 => Some(!values[0]),
                _ => None,
            }
        }
        (_, Some(Tok::Eq)) => {
            *pos += 1;
            let Tok::Str(value) = t.get(*pos)? else {
                return None;
            };
            *pos += 1;
            Some(cfgs.iter().any(|(k, v)| k == name && v == value))
        }
        _ => Some(cfgs.iter().any(|(k, v)| k == name && v.is_empty())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_what_real_configs_write() {
        let arm = Target::parse("arm64").unwrap();
        let amd = Target::parse("amd64").unwrap();
        let musl_arm = r#"cfg(all(target_arch = "aarch64", target_env = "musl"))"#;
        assert!(matches(musl_arm, &arm));
        assert!(!matches(musl_arm, &amd));
        assert!(matches(r#"cfg(target_os = "linux")"#, &amd));
        assert!(matches("cfg(unix)", &amd));
        assert!(!matches("cfg(windows)", &amd));
        assert!(matches(r#"cfg(not(target_arch = "x86_64"))"#, &arm));
        assert!(matches(
            r#"cfg(any(target_arch = "riscv64", target_feature = "crt-static"))"#,
            &arm
        ));
        assert!(!matches(r#"cfg(target_env = "gnu")"#, &arm));
        let gnu = Target::parse("x86_64-unknown-linux-gnu").unwrap();
        assert!(matches(r#"cfg(target_env = "gnu")"#, &gnu));
    }

    #[test]
    fn malformed_expressions_do_not_match() {
        let amd = Target::parse("amd64").unwrap();
        for bad in [
            "cfg(",
            "cfg(all(unix)",
            "cfg(not(unix, unix))",
            "x86_64",
            "cfg(unix) x",
        ] {
            assert!(!matches(bad, &amd), "{bad}");
        }
    }
}
