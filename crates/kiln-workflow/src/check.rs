//! `kiln ci github --check`: how a committed workflow differs from the one kiln
//! would write (a Dependabot bump of action versions, or drift shown as a diff).

use crate::valid_action;

/// Whether `current` differs from `generated` only in the versions of the actions it
/// uses (a Dependabot bump): `kiln ci github --check` accepts that, and says how to
/// record the bump in the config. Returns the bumped references (`path@version`).
pub fn only_action_versions_differ(current: &str, generated: &str) -> Option<Vec<String>> {
    let (a, b): (Vec<&str>, Vec<&str>) = (current.lines().collect(), generated.lines().collect());
    if a.len() != b.len() {
        return None;
    }
    // `(indent and path, version)` of a `uses:` line; a pinned one's `# vN` comment
    // is part of its version.
    let uses = |l: &str| -> Option<(String, String)> {
        let body = l.trim_start();
        let indent = &l[..l.len() - body.len()];
        let v = body
            .strip_prefix("- ")
            .unwrap_or(body)
            .strip_prefix("uses: ")?;
        let (path, version) = v.split_once('@')?;
        let plain = version.split(" # ").next().unwrap_or_default();
        valid_action(&format!("{path}@{plain}"))
            .then(|| (format!("{indent}{path}"), version.into()))
    };
    let mut bumped = Vec::new();
    for (x, y) in a.iter().zip(&b) {
        if x == y {
            continue;
        }
        match (uses(x), uses(y)) {
            (Some((px, vx)), Some((py, _))) if px == py => {
                let b = format!("{}@{vx}", px.trim_start());
                // One action is often used by several jobs: one mention each.
                if !bumped.contains(&b) {
                    bumped.push(b);
                }
            }
            _ => return None,
        }
    }
    Some(bumped)
}

/// How `current` differs from `generated`, for a `--check` failure: the changed
/// region between their common first and last lines, `-` current and `+` generated,
/// with its line number and three lines of context, at most `max` lines of each side.
pub fn drift(current: &str, generated: &str, max: usize) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (current.lines().collect(), generated.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (old, new) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    if old.is_empty() && new.is_empty() {
        return String::new();
    }
    let mut out = format!("@@ line {} @@\n", head + 1);
    for l in &a[head.saturating_sub(3)..head] {
        out.push_str(&format!("  {l}\n"));
    }
    let side = |out: &mut String, lines: &[&str], mark: char| {
        for l in lines.iter().take(max) {
            out.push_str(&format!("{mark} {l}\n"));
        }
        if lines.len() > max {
            out.push_str(&format!("{mark} ... {} more lines\n", lines.len() - max));
        }
    };
    side(&mut out, old, '-');
    side(&mut out, new, '+');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_shows_the_changed_region_with_context_and_a_cap() {
        let old = "a\nb\nc\nd\nold1\nold2\nz\n";
        let new = "a\nb\nc\nd\nnew1\nz\n";
        assert_eq!(
            drift(old, new, 10),
            "@@ line 5 @@\n  b\n  c\n  d\n- old1\n- old2\n+ new1\n"
        );
        assert_eq!(drift(old, old, 10), "");
        let long: String = (0..30).map(|i| format!("{i}\n")).collect();
        let d = drift("", &long, 5);
        assert!(d.ends_with("+ ... 25 more lines\n"), "{d}");
        assert_eq!(drift("", "x\n", 5), "@@ line 1 @@\n+ x\n");
    }

    #[test]
    fn an_action_bumped_in_several_jobs_is_named_once() {
        let old = "  - uses: actions/checkout@v4\n  - uses: actions/checkout@v4\n";
        let new = "  - uses: actions/checkout@v5\n  - uses: actions/checkout@v5\n";
        assert_eq!(
            only_action_versions_differ(old, new).unwrap(),
            ["- uses: actions/checkout@v4".replace("- uses: ", "")]
        );
    }
}
