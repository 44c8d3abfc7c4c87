//! `kiln ci github`: the workflow that builds a workspace incrementally with kiln.
//!
//! Four jobs: `plan` asks `kiln affected` which binaries x platforms the push or pull
//! request touches (dropping those a remote cache already holds); `build` runs one
//! job per matrix entry with `kiln build`; `image` (pushes to the default branch and
//! tags) collects every binary, verifies the store and pushes the multi-arch image
//! with `kiln image`; `release` (tags `v*`) attaches the binaries, their `.sha256`
//! files and `checksums.json` to a GitHub Release.
//!
//! Every `run:` script reads its inputs from `env:` (never `${{ }}` inside the
//! script), so expressions can't inject shell and the scripts run unchanged outside
//! Actions (the tests run them). The YAML is written by hand, not serialized, so
//! the comments and key order stay readable and the output is byte-stable.

use kiln_config::{CiConfig, Runner};
use kiln_diagnostics::{Error, Result};
use std::fmt::Write;

/// Actions the workflow uses, at their current major versions.
const ACTIONS: &[(&str, &str)] = &[
    ("checkout", "actions/checkout@v6"),
    ("cache", "actions/cache@v5"),
    ("cache-restore", "actions/cache/restore@v5"),
    ("upload", "actions/upload-artifact@v7"),
    ("download", "actions/download-artifact@v8"),
    ("sccache", "mozilla-actions/sccache-action@v0.0.9"),
];

/// What the workflow is generated from.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `[workspace.metadata.kiln.ci]`.
    pub config: CiConfig,
    /// The remote cache URL configured in `[workspace.metadata.kiln.cache]`, if any:
    /// jobs share binaries through it instead of through workflow artifacts.
    pub remote: Option<String>,
    /// The artifact store, relative to the workspace root (`artifacts`).
    pub artifact_dir: String,
    /// Use full commit SHAs from `pins` instead of major-version tags.
    pub pin_actions: bool,
}

/// The kiln cache directory on runners.
const KILN_CACHE: &str = "~/.cache/kiln";

/// The default kiln install command on a runner.
pub const DEFAULT_INSTALL: &str =
    "cargo install --locked --git https://github.com/kiln-build/kiln kiln";

/// Writes `.github/workflows/kiln.yml`.
pub fn github(o: &Options) -> Result<String> {
    let c = &o.config;
    let matrix = c.matrix.as_deref().unwrap_or("binary");
    if matrix != "binary" && matrix != "platform" {
        return Err(Error::usage(format!(
            "invalid `matrix = \"{matrix}\"` in [workspace.metadata.kiln.ci]"
        ))
        .hint(
            "use `binary` (one job per binary x platform) or `platform` (one job per platform)",
        ));
    }
    if let Some(image) = &c.image {
        let first = image.split('/').next().unwrap_or_default();
        let has_registry = image.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if !has_registry
            || image.contains('@')
            || image.rsplit('/').next().is_some_and(|l| l.contains(':'))
        {
            return Err(Error::usage(format!(
                "`image = \"{image}\"` in [workspace.metadata.kiln.ci] needs a registry and no tag"
            ))
            .hint("write it as `ghcr.io/<owner>/<name>` (the workflow adds the tags)"));
        }
    }
    let action = |name: &str| -> Result<String> {
        let tag = ACTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .expect("known action")
            .1;
        if !o.pin_actions {
            return Ok(tag.to_string());
        }
        let sha = c.pins.as_ref().and_then(|p| p.get(tag)).ok_or_else(|| {
            Error::usage(format!("`--pin-actions` needs the commit SHA of `{tag}`"))
                .hint(format!("add `\"{tag}\" = \"<40-hex sha>\"` to [workspace.metadata.kiln.ci.pins] (kiln can't look SHAs up offline)"))
        })?;
        if sha.len() != 40 || !sha.chars().all(|ch| ch.is_ascii_hexdigit()) {
            return Err(Error::usage(format!(
                "the pin for `{tag}` is not a 40-hex commit SHA"
            )));
        }
        let (path, version) = tag.split_once('@').expect("tag has a version");
        Ok(format!("{path}@{sha} # {version}"))
    };
    let runner = match &c.runner {
        None => "ubuntu-latest".to_string(),
        Some(Runner::One(r)) => r.clone(),
        Some(Runner::Many(rs)) => format!("[{}]", rs.join(", ")),
    };
    let branch = c.branch.clone().unwrap_or_else(|| "main".into());
    let install = c.install.clone().unwrap_or_else(|| DEFAULT_INSTALL.into());
    let push_image = c.push_image.unwrap_or(true);
    let release = c.release.unwrap_or(true) && push_image;
    let image = c.image.clone();
    // Binaries travel from build jobs to later jobs through a shared-directory cache
    // carried as artifacts: build jobs never write to the remote cache (they may run a
    // pull request's code); the `publish` job, on pushes only, copies them there.
    let remote = o.remote.is_some();

    let mut y = String::new();
    let w = &mut y;
    line(
        w,
        0,
        "# Generated by `kiln ci github` from [workspace.metadata.kiln.ci] in Cargo.toml.",
    );
    line(
        w,
        0,
        "# Don't edit: change the config and run `kiln ci github` again;",
    );
    line(
        w,
        0,
        "# `kiln ci github --check` fails when this file is out of date.",
    );
    line(w, 0, "name: kiln");
    line(w, 0, "");
    line(w, 0, "on:");
    line(w, 1, "push:");
    line(w, 2, &format!("branches: [{branch}]"));
    line(w, 2, "tags: [\"v*\"]");
    line(w, 1, "pull_request:");
    line(w, 0, "");
    line(
        w,
        0,
        "# One run per ref; a newer push to a pull request cancels the older run.",
    );
    line(w, 0, "concurrency:");
    line(w, 1, "group: kiln-${{ github.ref }}");
    line(
        w,
        1,
        "cancel-in-progress: ${{ github.event_name == 'pull_request' }}",
    );
    line(w, 0, "");
    line(w, 0, "permissions:");
    line(w, 1, "contents: read");
    line(w, 0, "");
    line(w, 0, "env:");
    line(w, 1, "CARGO_TERM_COLOR: always");
    line(
        w,
        1,
        "# sccache (GitHub Actions cache backend) wraps rustc for the crates kiln must compile.",
    );
    line(w, 1, "SCCACHE_GHA_ENABLED: \"true\"");
    line(w, 0, "");
    line(w, 0, "jobs:");

    // plan
    line(w, 1, "plan:");
    line(w, 2, "name: Plan (affected binaries)");
    line(w, 2, &format!("runs-on: {runner}"));
    read_only(w, remote);
    line(w, 2, "outputs:");
    line(w, 3, "matrix: ${{ steps.affected.outputs.matrix }}");
    line(w, 3, "empty: ${{ steps.affected.outputs.empty }}");
    line(w, 2, "steps:");
    checkout(w, &action("checkout")?, true);
    setup_steps(w, c, &install, false);
    line(w, 3, "- name: Affected binaries x platforms");
    line(w, 4, "id: affected");
    line(w, 4, "env:");
    line(w, 5, "EVENT_NAME: ${{ github.event_name }}");
    line(
        w,
        5,
        "PR_BASE_SHA: ${{ github.event.pull_request.base.sha }}",
    );
    line(w, 5, "PUSH_BEFORE: ${{ github.event.before }}");
    line(w, 5, "REF_TYPE: ${{ github.ref_type }}");
    if remote {
        remote_read_env(w);
    }
    line(w, 4, "run: |");
    script(w, 5, &[
        "set -euo pipefail",
        "# Compare with the pull request's base, or with the previous push. A new branch,",
        "# a tag or history that isn't there builds everything.",
        "base=\"\"",
        "if [ \"$EVENT_NAME\" = pull_request ]; then base=\"$PR_BASE_SHA\"; elif [ \"$REF_TYPE\" = branch ]; then base=\"$PUSH_BEFORE\"; fi",
        "if [ -n \"$base\" ] && [ \"$base\" != 0000000000000000000000000000000000000000 ] && git cat-file -e \"$base^{commit}\" 2>/dev/null; then",
        "  scope=(--base \"$base\" --head HEAD)",
        "else",
        "  scope=(--all)",
        "fi",
        "matrix=$(kiln affected \"${scope[@]}\" --skip-cached --format github-matrix)",
        "echo \"matrix=$matrix\" >> \"$GITHUB_OUTPUT\"",
        "if [ \"$matrix\" = '{\"include\":[]}' ]; then echo \"empty=true\" >> \"$GITHUB_OUTPUT\"; else echo \"empty=false\" >> \"$GITHUB_OUTPUT\"; fi",
        "kiln affected \"${scope[@]}\" --format text",
    ]);
    line(w, 0, "");

    // build
    line(w, 1, "build:");
    line(w, 2, "name: Build ${{ matrix.name }}");
    line(w, 2, "needs: plan");
    line(w, 2, "if: needs.plan.outputs.empty == 'false'");
    line(w, 2, &format!("runs-on: {runner}"));
    read_only(w, remote);
    line(w, 2, "strategy:");
    line(w, 3, "fail-fast: false");
    line(w, 3, "matrix: ${{ fromJSON(needs.plan.outputs.matrix) }}");
    line(w, 2, "steps:");
    checkout(w, &action("checkout")?, false);
    line(w, 3, &format!("- uses: {}", action("cache")?));
    line(w, 4, "with:");
    cache_paths(w);
    line(w, 5, "key: kiln-${{ runner.os }}-${{ matrix.platform }}-${{ hashFiles('**/Cargo.lock', 'rust-toolchain.toml', 'rust-toolchain') }}-${{ github.sha }}");
    line(w, 5, "restore-keys: |");
    line(w, 6, "kiln-${{ runner.os }}-${{ matrix.platform }}-${{ hashFiles('**/Cargo.lock', 'rust-toolchain.toml', 'rust-toolchain') }}-");
    line(w, 6, "kiln-${{ runner.os }}-${{ matrix.platform }}-");
    line(w, 3, &format!("- uses: {}", action("sccache")?));
    setup_steps(w, c, &install, true);
    line(w, 3, "- name: kiln build");
    line(w, 4, "env:");
    line(w, 5, "PACKAGES: ${{ matrix.packages }}");
    line(w, 5, "TARGET: ${{ matrix.target }}");
    if remote {
        remote_read_env(w);
        line(w, 5, "SLICE: file://${{ runner.temp }}/kiln-slice");
    } else {
        line(
            w,
            5,
            "# New binaries also go to a shared-directory cache handed to the image job.",
        );
        line(
            w,
            5,
            "KILN_REMOTE_CACHE: file://${{ runner.temp }}/kiln-slice",
        );
    }
    line(w, 4, "run: |");
    let mut build = vec![
        "set -euo pipefail",
        "args=()",
        "read -ra pkgs <<< \"$PACKAGES\"",
        "for p in \"${pkgs[@]}\"; do args+=(-p \"$p\"); done",
        "kiln build --target \"$TARGET\" \"${args[@]}\" --metrics-out kiln-metrics --message-format json > kiln-build.jsonl",
        "kiln verify",
    ];
    if remote {
        // Restored binaries too, not only the ones built here, into the slice.
        build.push(
            "KILN_REMOTE_CACHE=\"$SLICE\" kiln cache push --target \"$TARGET\" \"${args[@]}\"",
        );
    } else {
        build.push("kiln cache push --target \"$TARGET\" \"${args[@]}\"");
    }
    script(w, 5, &build);
    line(w, 3, &format!("- uses: {}", action("upload")?));
    line(w, 4, "with:");
    line(
        w,
        5,
        "name: artifacts-${{ matrix.platform }}-${{ strategy.job-index }}",
    );
    line(w, 5, "path: |");
    line(w, 6, &format!("{}/", o.artifact_dir));
    line(w, 6, "kiln-build.jsonl");
    line(w, 6, "kiln-metrics/");
    line(w, 3, &format!("- uses: {}", action("upload")?));
    line(w, 4, "with:");
    line(
        w,
        5,
        "name: kiln-slice-${{ matrix.platform }}-${{ strategy.job-index }}",
    );
    line(w, 5, "path: ${{ runner.temp }}/kiln-slice");
    line(w, 5, "include-hidden-files: true");

    if push_image {
        line(w, 0, "");
        line(w, 1, "image:");
        line(w, 2, "name: Image (linux/amd64 + linux/arm64)");
        line(w, 2, "needs: [plan, build]");
        line(w, 2, "# Also when nothing changed (build skipped): the image is still tagged for this commit.");
        line(w, 2, &format!("if: always() && github.event_name == 'push' && needs.plan.result == 'success' && (needs.build.result == 'success' || needs.build.result == 'skipped') && (github.ref == 'refs/heads/{branch}' || startsWith(github.ref, 'refs/tags/v'))"));
        line(w, 2, &format!("runs-on: {runner}"));
        line(w, 2, "permissions:");
        line(w, 3, "contents: read");
        line(w, 3, "packages: write");
        line(w, 2, "steps:");
        checkout(w, &action("checkout")?, false);
        line(w, 3, &format!("- uses: {}", action("cache-restore")?));
        line(w, 4, "with:");
        cache_paths(w);
        line(w, 5, "key: kiln-${{ runner.os }}-image-${{ github.sha }}");
        line(w, 5, "restore-keys: |");
        line(w, 6, "kiln-${{ runner.os }}-");
        download_slices(w, &action("download")?);
        line(w, 3, &format!("- uses: {}", action("sccache")?));
        setup_steps(w, c, &install, true);
        line(
            w,
            3,
            "- name: Every binary (restored from this run's builds and the cache)",
        );
        line(w, 4, "env:");
        if remote {
            remote_read_env(w);
            signing_key_env(w);
            line(w, 5, "SLICE: file://${{ runner.temp }}/kiln-slice");
        } else {
            line(
                w,
                5,
                "KILN_REMOTE_CACHE: file://${{ runner.temp }}/kiln-slice",
            );
        }
        line(w, 4, "run: |");
        let mut every = vec!["set -euo pipefail"];
        if remote {
            every.push("KILN_REMOTE_CACHE=\"$SLICE\" kiln cache pull");
        }
        every.extend(["kiln build", "kiln verify"]);
        script(w, 5, &every);
        line(w, 3, "- name: kiln image --push");
        line(w, 4, "env:");
        line(w, 5, "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}");
        match &image {
            Some(i) => line(w, 5, &format!("IMAGE: {i}")),
            None => line(w, 5, "IMAGE: ghcr.io/${{ github.repository }}"),
        }
        line(w, 5, &format!("DEFAULT_BRANCH: {branch}"));
        line(w, 4, "run: |");
        script(w, 5, &[
            "set -euo pipefail",
            "repo=\"${IMAGE,,}\"  # registries want lowercase repository names",
            "tags=()",
            "if [ \"$GITHUB_REF_TYPE\" = tag ]; then tags+=(--tag \"${GITHUB_REF_NAME#v}\"); fi",
            "if [ \"$GITHUB_REF_NAME\" = \"$DEFAULT_BRANCH\" ]; then tags+=(--tag latest); fi",
            "kiln image --push \"$repo:$GITHUB_SHA\" \"${tags[@]}\"",
        ]);
        line(w, 3, &format!("- uses: {}", action("upload")?));
        line(w, 4, "with:");
        line(w, 5, "name: artifacts-all");
        line(w, 5, &format!("path: {}/", o.artifact_dir));
    }

    if remote {
        publish_job(
            w,
            c,
            &install,
            &runner,
            &action("checkout")?,
            &action("download")?,
            &action("sccache")?,
        );
    }

    if release {
        line(w, 0, "");
        line(w, 1, "release:");
        line(w, 2, "name: GitHub Release");
        line(w, 2, "needs: image");
        line(
            w,
            2,
            "if: github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')",
        );
        line(w, 2, &format!("runs-on: {runner}"));
        line(w, 2, "permissions:");
        line(w, 3, "contents: write");
        line(w, 2, "steps:");
        line(w, 3, &format!("- uses: {}", action("download")?));
        line(w, 4, "with:");
        line(w, 5, "name: artifacts-all");
        line(w, 5, "path: artifacts");
        line(w, 3, "- name: Binaries, .sha256 files and checksums.json");
        line(w, 4, "env:");
        line(w, 5, "GH_TOKEN: ${{ secrets.GITHUB_TOKEN }}");
        line(w, 4, "run: |");
        script(w, 5, &[
            "set -euo pipefail",
            "mkdir -p dist",
            "# Asset names must differ between architectures: <bin>-linux-<arch>.",
            "for f in artifacts/linux/*/*; do",
            "  case \"$f\" in *.sha256|*.version) continue ;; esac",
            "  arch=$(basename \"$(dirname \"$f\")\"); bin=$(basename \"$f\")",
            "  cp \"$f\" \"dist/$bin-linux-$arch\"",
            "  (cd dist && sha256sum \"$bin-linux-$arch\" > \"$bin-linux-$arch.sha256\")",
            "done",
            "cp artifacts/checksums.json dist/",
            "gh release create \"$GITHUB_REF_NAME\" --repo \"$GITHUB_REPOSITORY\" --title \"$GITHUB_REF_NAME\" --generate-notes dist/*",
        ]);
    }
    Ok(y)
}

/// The cached directories: cargo's downloads and kiln's cache. The image job restores
/// with the same list, since a cache only matches the paths it was saved with.
fn cache_paths(w: &mut String) {
    line(w, 5, "path: |");
    for p in [
        "~/.cargo/registry/index/",
        "~/.cargo/registry/cache/",
        "~/.cargo/git/db/",
        KILN_CACHE,
    ] {
        line(w, 6, p);
    }
}

/// The permissions of a job that may run a pull request's code: read-only.
fn read_only(w: &mut String, remote: bool) {
    line(w, 2, "permissions:");
    line(w, 3, "contents: read");
    if remote {
        line(w, 3, "packages: read");
    }
}

/// The environment of a step that reads the remote cache: a read-only token (ghcr.io
/// takes GITHUB_TOKEN) given to that step alone, and no uploads.
fn remote_read_env(w: &mut String) {
    line(
        w,
        5,
        "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}  # read access to the remote cache",
    );
    line(
        w,
        5,
        "KILN_CACHE_UPLOAD: never  # only the publish job writes to the shared cache",
    );
}

/// The signing key, from a repository secret, for the jobs that run on pushes only
/// (signing and checking what ships); empty when the secret is not set (signing off).
fn signing_key_env(w: &mut String) {
    line(
        w,
        5,
        "KILN_CACHE_SIGNING_KEY: ${{ secrets.KILN_CACHE_SIGNING_KEY }}",
    );
}

/// Downloads every build job's slice into one shared-directory cache.
fn download_slices(w: &mut String, download: &str) {
    line(w, 3, &format!("- uses: {download}"));
    line(w, 4, "with:");
    line(w, 5, "pattern: kiln-slice-*");
    line(w, 5, "path: ${{ runner.temp }}/kiln-slice");
    line(w, 5, "merge-multiple: true");
}

/// The one job that writes to the remote cache: on pushes only (never for a pull
/// request), it copies this run's binaries from the slices into the remote.
fn publish_job(
    w: &mut String,
    c: &CiConfig,
    install: &str,
    runner: &str,
    checkout_action: &str,
    download: &str,
    sccache: &str,
) {
    line(w, 0, "");
    line(w, 1, "publish:");
    line(w, 2, "name: Publish to the remote cache");
    line(w, 2, "needs: build");
    line(
        w,
        2,
        "# Pushes only: a pull request's builds never write to the shared cache.",
    );
    line(
        w,
        2,
        "if: github.event_name == 'push' && needs.build.result == 'success'",
    );
    line(w, 2, &format!("runs-on: {runner}"));
    line(w, 2, "permissions:");
    line(w, 3, "contents: read");
    line(w, 3, "packages: write");
    line(w, 2, "steps:");
    checkout(w, checkout_action, false);
    download_slices(w, download);
    line(w, 3, &format!("- uses: {sccache}"));
    setup_steps(w, c, install, true);
    line(w, 3, "- name: This run's binaries into the local cache");
    line(w, 4, "env:");
    line(
        w,
        5,
        "KILN_REMOTE_CACHE: file://${{ runner.temp }}/kiln-slice",
    );
    line(w, 4, "run: kiln cache pull");
    line(w, 3, "- name: kiln cache push");
    line(w, 4, "env:");
    line(
        w,
        5,
        "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}  # write access to the remote cache",
    );
    signing_key_env(w);
    line(w, 4, "run: kiln cache push");
}

fn line(w: &mut String, indent: usize, text: &str) {
    if text.is_empty() {
        w.push('\n');
    } else {
        let _ = writeln!(w, "{}{text}", "  ".repeat(indent));
    }
}

fn script(w: &mut String, indent: usize, lines: &[&str]) {
    for l in lines {
        line(w, indent, l);
    }
}

fn checkout(w: &mut String, action: &str, full_history: bool) {
    line(w, 3, &format!("- uses: {action}"));
    line(w, 4, "with:");
    line(
        w,
        5,
        "persist-credentials: false  # no token left in .git/config for later steps",
    );
    if full_history {
        line(
            w,
            5,
            "fetch-depth: 0  # `kiln affected` needs the merge-base",
        );
    }
}

/// The configured setup commands, installing kiln, and (for building jobs) `kiln setup`.
fn setup_steps(w: &mut String, c: &CiConfig, install: &str, build: bool) {
    for (i, cmd) in c.setup.iter().flatten().enumerate() {
        line(w, 3, &format!("- name: Setup {}", i + 1));
        line(w, 4, "run: |");
        for l in cmd.lines() {
            line(w, 5, l);
        }
    }
    line(w, 3, "- name: Install kiln");
    line(w, 4, "run: |");
    line(w, 5, "command -v kiln >/dev/null || \\");
    line(w, 5, &format!("  {install}"));
    if build {
        line(w, 3, "- name: kiln setup (rustup targets, zig)");
        line(w, 4, "run: kiln setup");
    }
}
