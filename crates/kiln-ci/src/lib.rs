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
//! Actions (the tests run them). The workflow is built as a typed model
//! ([`model::Workflow`]) and rendered by one writer.

mod check;
mod model;

pub use check::{drift, only_action_versions_differ};

use kiln_config::{CiConfig, Runner};
use kiln_diagnostics::{Error, Result};
use model::{block, kv, kv_why, Access, Entry, Job, Step, Workflow};

/// Actions the workflow uses by role, at their current major versions; `actions` in
/// the config replaces any of them.
const ACTIONS: &[(&str, &str)] = &[
    ("checkout", "actions/checkout@v6"),
    ("cache-restore", "actions/cache/restore@v5"),
    ("cache-save", "actions/cache/save@v5"),
    ("upload", "actions/upload-artifact@v7"),
    ("download", "actions/download-artifact@v8"),
    ("sccache", "mozilla-actions/sccache-action@v0.0.9"),
    ("attest", "actions/attest-build-provenance@v2"),
];

/// `timeout-minutes` of the jobs that only plan, publish or release.
const SHORT_JOB_MINUTES: u32 = 20;
/// `timeout-minutes` of a build job by default.
const BUILD_JOB_MINUTES: u32 = 60;
/// `timeout-minutes` of the image job: it may build what the cache lacks.
const IMAGE_JOB_MINUTES: u32 = 60;

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
    /// The platforms the image holds (`linux/amd64`), for the image job's title.
    pub platforms: Vec<String>,
    /// The kiln version the jobs install (the one generating the workflow).
    pub version: String,
}

/// The kiln cache directory on runners.
const KILN_CACHE: &str = "~/.cache/kiln";

/// The script that installs a kiln release (prebuilt, checksum-verified, else
/// `cargo install --locked --version`); also published as a release asset.
pub const INSTALL_SCRIPT: &str = include_str!("install.sh");

/// Writes `.github/workflows/kiln.yml`.
pub fn github(o: &Options) -> Result<String> {
    Ok(workflow(o)?.render())
}

/// Checks `image`: a registry and a repository, without a tag or digest.
fn check_image(image: &str) -> Result<()> {
    let first = image.split('/').next().unwrap_or_default();
    let has_registry =
        image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_registry
        || image.contains('@')
        || image.rsplit('/').next().is_some_and(|l| l.contains(':'))
    {
        return Err(Error::usage(format!(
            "`image = \"{image}\"` in [workspace.metadata.kiln.ci] needs a registry and no tag"
        ))
        .hint("write it as `ghcr.io/<owner>/<name>` (the workflow adds the tags)"));
    }
    Ok(())
}

/// The actions, each as a tag or (with `--pin-actions`) a pinned commit.
struct Actions {
    checkout: String,
    cache_restore: String,
    cache_save: String,
    upload: String,
    download: String,
    sccache: String,
    attest: String,
}

/// Whether `uses` is an action reference kiln will write: `owner/name[/path]@ref`.
fn valid_action(uses: &str) -> bool {
    let Some((path, version)) = uses.split_once('@') else {
        return false;
    };
    let ok = |s: &str, extra: &[char]| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(&c))
    };
    path.split('/').count() >= 2 && path.split('/').all(|p| ok(p, &[])) && ok(version, &['/'])
}

impl Actions {
    fn resolve(c: &CiConfig, pin: bool) -> Result<Self> {
        if let Some(unknown) = c
            .actions
            .iter()
            .flatten()
            .map(|(role, _)| role)
            .find(|role| !ACTIONS.iter().any(|(r, _)| r == role))
        {
            let roles: Vec<&str> = ACTIONS.iter().map(|(r, _)| *r).collect();
            return Err(Error::usage(format!(
                "[workspace.metadata.kiln.ci.actions] has no role `{}`",
                kiln_diagnostics::printable(unknown, 40)
            ))
            .hint(format!("the roles are {}", roles.join(", "))));
        }
        let action = |role: &str| -> Result<String> {
            let default = ACTIONS
                .iter()
                .find(|(r, _)| *r == role)
                .expect("known role")
                .1;
            let tag = c
                .actions
                .as_ref()
                .and_then(|a| a.get(role))
                .map_or(default, String::as_str);
            if !valid_action(tag) {
                return Err(Error::usage(format!(
                    "`{role}` in [workspace.metadata.kiln.ci.actions] is not an action reference"
                ))
                .hint(format!(
                    "write it as `owner/name@version`, e.g. `{default}`"
                )));
            }
            if !pin {
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
        Ok(Self {
            checkout: action("checkout")?,
            cache_restore: action("cache-restore")?,
            cache_save: action("cache-save")?,
            upload: action("upload")?,
            download: action("download")?,
            sccache: action("sccache")?,
            attest: action("attest")?,
        })
    }
}

/// What every job shares.
struct Ctx<'a> {
    c: &'a CiConfig,
    a: Actions,
    runner: String,
    /// The configured install command; else the release install script.
    install: Option<String>,
    /// The kiln version the install script installs.
    version: String,
    /// A remote cache is configured: jobs read it, the publish job writes it.
    remote: bool,
}

/// The workflow model for `o`.
fn workflow(o: &Options) -> Result<Workflow> {
    let c = &o.config;
    if let Some(image) = &c.image {
        check_image(image)?;
    }
    let cx = Ctx {
        c,
        a: Actions::resolve(c, o.pin_actions)?,
        runner: match &c.runner {
            None => "ubuntu-latest".to_string(),
            Some(Runner::One(r)) => r.clone(),
            Some(Runner::Many(rs)) => format!("[{}]", rs.join(", ")),
        },
        install: c.install.clone(),
        version: o.version.clone(),
        // Binaries travel from build jobs to later jobs through a shared-directory
        // cache carried as artifacts: build jobs never write to the remote cache (they
        // may run a pull request's code); the `publish` job, on pushes only, copies
        // them there.
        remote: o.remote.is_some(),
    };
    let branch = c.branch.clone().unwrap_or_else(|| "main".into());
    let push_image = c.push_image.unwrap_or(true);
    let release = c.release.unwrap_or(true);
    // Parsed (and checked) when the config was read.
    let max_size = c
        .cache_max_size
        .as_ref()
        .map_or_else(|| "2GiB".to_string(), |s| s.to_string());
    let mut jobs = vec![plan_job(&cx), build_job(&cx, &o.artifact_dir, &max_size)];
    if push_image {
        jobs.push(image_job(&cx, o, &branch));
    }
    if cx.remote {
        jobs.push(publish_job(&cx));
    }
    if release {
        jobs.push(release_job(&cx, push_image, &o.platforms));
    }
    Ok(Workflow {
        header: vec![
            "Generated by `kiln ci github` from [workspace.metadata.kiln.ci] in Cargo.toml.",
            "Don't edit: change the config and run `kiln ci github` again;",
            "`kiln ci github --check` fails when this file is out of date.",
        ],
        name: "kiln",
        branch,
        env: vec![
            kv("CARGO_TERM_COLOR", "always"),
            kv_why(
                "KILN_LOCKED",
                "\"true\"",
                "every cargo run gets --locked: a stale Cargo.lock fails CI instead of being rewritten",
            ),
            Entry::Comment(
                "sccache (GitHub Actions cache backend) wraps rustc for the crates kiln must compile.",
            ),
            kv("SCCACHE_GHA_ENABLED", "\"true\""),
        ],
        jobs,
    })
}

/// `plan`: which binaries x platforms to build.
fn plan_job(cx: &Ctx) -> Job {
    let mut j = Job::new("plan", "Plan (affected binaries)", &cx.runner);
    j.timeout = SHORT_JOB_MINUTES;
    j.permissions = read_only(cx.remote);
    j.outputs = vec![
        kv("matrix", "${{ steps.affected.outputs.matrix }}"),
        kv("empty", "${{ steps.affected.outputs.empty }}"),
        kv("image", "${{ steps.affected.outputs.image }}"),
    ];
    j.steps.push(checkout(&cx.a.checkout, true));
    j.steps.extend(setup_steps(cx, false));
    let mut env = vec![
        kv("EVENT_NAME", "${{ github.event_name }}"),
        kv("PR_BASE_SHA", "${{ github.event.pull_request.base.sha }}"),
        kv("PUSH_BEFORE", "${{ github.event.before }}"),
        kv("REF_TYPE", "${{ github.ref_type }}"),
    ];
    if cx.remote {
        env.extend(remote_read_env());
    }
    j.steps.push(
        Step::named("Affected binaries x platforms")
            .id("affected")
            .env(env)
            .script([
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
                "# matrix= (what the remote cache lacks), empty=, image= (a binary or the image settings changed)",
                "kiln affected \"${scope[@]}\" --skip-cached --format github-outputs >> \"$GITHUB_OUTPUT\"",
                "kiln affected \"${scope[@]}\" --format text",
            ]),
    );
    j
}

/// `build`: one job per matrix entry.
fn build_job(cx: &Ctx, artifact_dir: &str, max_size: &str) -> Job {
    let mut j = Job::new("build", "Build ${{ matrix.name }}", &cx.runner);
    j.needs = vec!["plan"];
    j.condition = Some("needs.plan.outputs.empty == 'false'".into());
    j.timeout = cx.c.timeout_minutes.unwrap_or(BUILD_JOB_MINUTES);
    j.permissions = read_only(cx.remote);
    j.matrix = Some("${{ fromJSON(needs.plan.outputs.matrix) }}".into());
    let lock = "${{ hashFiles('**/Cargo.lock', 'rust-toolchain.toml', 'rust-toolchain') }}";
    let prefix = format!("kiln-${{{{ runner.os }}}}-${{{{ matrix.platform }}}}-{lock}");
    j.steps.push(checkout(&cx.a.checkout, false));
    j.steps.push(
        Step::uses(&cx.a.cache_restore)
            .comment("The newest kiln cache saved for this lockfile, else for this platform.")
            .with([
                cache_paths(),
                kv("key", format!("{prefix}-")),
                block(
                    "restore-keys",
                    [
                        format!("{prefix}-"),
                        "kiln-${{ runner.os }}-${{ matrix.platform }}-".to_string(),
                    ],
                ),
            ]),
    );
    j.steps.push(Step::uses(&cx.a.sccache));
    j.steps.extend(setup_steps(cx, true));
    let mut env = vec![
        kv("PACKAGES", "${{ matrix.packages }}"),
        kv("TARGET", "${{ matrix.target }}"),
    ];
    if cx.remote {
        env.extend(remote_read_env());
        env.push(kv("SLICE", SLICE));
    } else {
        env.push(Entry::Comment(
            "New binaries also go to a shared-directory cache handed to the image job.",
        ));
        env.push(kv("KILN_REMOTE_CACHE", SLICE));
    }
    // Restored binaries too, not only the ones built here, go into the slice.
    let push = if cx.remote {
        "KILN_REMOTE_CACHE=\"$SLICE\" kiln cache push --target \"$TARGET\" \"${args[@]}\""
    } else {
        "kiln cache push --target \"$TARGET\" \"${args[@]}\""
    };
    j.steps.push(Step::named("kiln build").id("build").env(env).script([
        "set -euo pipefail",
        "args=()",
        "read -ra pkgs <<< \"$PACKAGES\"",
        "for p in \"${pkgs[@]}\"; do args+=(-p \"$p\"); done",
        "kiln build --target \"$TARGET\" \"${args[@]}\" --metrics-out kiln-metrics --message-format json > kiln-build.jsonl",
        "kiln verify",
        push,
        "# Save the kiln cache only when this job compiled something new.",
        "if grep -q '\"reason\":\"build-started\"' kiln-build.jsonl; then echo \"built=true\" >> \"$GITHUB_OUTPUT\"; else echo \"built=false\" >> \"$GITHUB_OUTPUT\"; fi",
    ]));
    j.steps.push(
        Step::named("Trim the kiln cache")
            .condition("steps.build.outputs.built == 'true'")
            .env([kv("MAX_SIZE", max_size)])
            .run("kiln cache gc --max-size \"$MAX_SIZE\""),
    );
    j.steps.push(
        Step::uses(&cx.a.cache_save)
            .condition("steps.build.outputs.built == 'true'")
            .comment("One entry per run that built something: restore takes the newest.")
            .with([
                cache_paths(),
                kv(
                    "key",
                    format!("{prefix}-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}-${{{{ strategy.job-index }}}}"),
                ),
            ]),
    );
    j.steps.push(Step::uses(&cx.a.upload).with([
        kv(
            "name",
            "artifacts-${{ matrix.platform }}-${{ strategy.job-index }}",
        ),
        block(
            "path",
            [
                format!("{artifact_dir}/"),
                "kiln-build.jsonl".into(),
                "kiln-metrics/".into(),
            ],
        ),
    ]));
    j.steps.push(Step::uses(&cx.a.upload).with([
        kv(
            "name",
            "kiln-slice-${{ matrix.platform }}-${{ strategy.job-index }}",
        ),
        kv("path", "${{ runner.temp }}/kiln-slice"),
        kv("include-hidden-files", "true"),
    ]));
    j
}

/// The condition of the jobs that ship (image, release): pushes to `branch` or tags,
/// also when nothing changed (build skipped), never when planning or a build failed.
fn ships(refs: &str) -> String {
    format!("always() && github.event_name == 'push' && needs.plan.result == 'success' && (needs.build.result == 'success' || needs.build.result == 'skipped') && ({refs})")
}

/// The steps that put every binary into the artifact store: this run's builds (the
/// slices), the caches, and only if something is still missing, a build; zig and the
/// Rust targets are installed only then.
fn collect_steps(cx: &Ctx, cache_key: &str) -> Vec<Step> {
    let mut steps = vec![
        checkout(&cx.a.checkout, false),
        Step::uses(&cx.a.cache_restore).with([
            cache_paths(),
            kv("key", cache_key),
            block("restore-keys", ["kiln-${{ runner.os }}-"]),
        ]),
        download_slices(&cx.a.download),
    ];
    steps.extend(setup_steps(cx, false));
    let mut env = Vec::new();
    let mut every = vec!["set -euo pipefail"];
    if cx.remote {
        env.extend(remote_read_env());
        env.push(kv("SLICE", SLICE));
        every.extend([
            "# This run's own builds: vouched for (unsigned is fine); the shared cache",
            "# only where its trusted keys signed it. No signing key in a job that may compile.",
            "KILN_REMOTE_CACHE=\"$SLICE\" kiln cache pull --vouch",
        ]);
    } else {
        env.push(kv("KILN_REMOTE_CACHE", SLICE));
        every.push("kiln cache pull --vouch");
    }
    every.extend([
        "# Exit 4 is a missing tool: something must be built, so set up and build.",
        "rc=0",
        "kiln build || rc=$?",
        "if [ \"$rc\" = 4 ]; then kiln setup && kiln build; elif [ \"$rc\" != 0 ]; then exit \"$rc\"; fi",
        "kiln verify",
    ]);
    steps.push(
        Step::named("Every binary (restored from this run's builds and the cache)")
            .env(env)
            .script(every),
    );
    steps
}

/// `image`: every binary, verified, into the multi-arch image, pushed.
fn image_job(cx: &Ctx, o: &Options, branch: &str) -> Job {
    let title = if o.platforms.is_empty() {
        "Image".to_string()
    } else {
        format!("Image ({})", o.platforms.join(" + "))
    };
    let mut j = Job::new("image", title, &cx.runner);
    j.needs = vec!["plan", "build"];
    j.comment = Some(
        "Only when a binary or the image settings changed (tags always): a push that changes neither leaves `latest` as it is.",
    );
    j.condition = Some(ships(&format!(
        "(github.ref == 'refs/heads/{branch}' && needs.plan.outputs.image == 'true') || startsWith(github.ref, 'refs/tags/v')"
    )));
    j.timeout = IMAGE_JOB_MINUTES;
    // Keyless attestations: GitHub's OIDC token and attestation store, in this job only.
    j.permissions = vec![
        ("contents", Access::Read),
        ("packages", Access::Write),
        ("id-token", Access::Write),
        ("attestations", Access::Write),
    ];
    j.steps = collect_steps(cx, "kiln-${{ runner.os }}-image-");
    let image = o
        .config
        .image
        .clone()
        .unwrap_or_else(|| "ghcr.io/${{ github.repository }}".into());
    j.steps.push(
        Step::named("kiln image --push")
            .id("image")
            .env([
                kv("GITHUB_TOKEN", "${{ secrets.GITHUB_TOKEN }}"),
                kv_why(
                    "KILN_IMAGE_SIGNING_KEY",
                    "${{ secrets.KILN_IMAGE_SIGNING_KEY }}",
                    "cosign-compatible signature when the secret is set",
                ),
                kv("IMAGE", image),
                kv("DEFAULT_BRANCH", branch),
            ])
            .script([
                "set -euo pipefail",
                "repo=\"${IMAGE,,}\"  # registries want lowercase repository names",
                "tags=()",
                "if [ \"$GITHUB_REF_TYPE\" = tag ]; then tags+=(--tag \"${GITHUB_REF_NAME#v}\"); fi",
                "if [ \"$GITHUB_REF_NAME\" = \"$DEFAULT_BRANCH\" ]; then tags+=(--tag latest); fi",
                "# SBOMs and provenance are attached to each platform manifest.",
                "kiln image --push \"$repo:$GITHUB_SHA\" \"${tags[@]}\" --message-format json > image.jsonl",
                "digest=$(sed -n 's/.*\"reason\":\"image-written\".*\"digest\":\"\\(sha256:[0-9a-f]*\\)\".*/\\1/p' image.jsonl | head -1)",
                "echo \"name=$repo\" >> \"$GITHUB_OUTPUT\"",
                "echo \"digest=$digest\" >> \"$GITHUB_OUTPUT\"",
            ]),
    );
    j.steps.push(Step::uses(&cx.a.attest).with([
        kv("subject-name", "${{ steps.image.outputs.name }}"),
        kv("subject-digest", "${{ steps.image.outputs.digest }}"),
        kv("push-to-registry", "true"),
    ]));
    j.steps.push(Step::uses(&cx.a.upload).with([
        kv("name", "artifacts-all"),
        kv("path", format!("{}/", o.artifact_dir)),
    ]));
    j
}

/// `publish`: the one job that writes to the remote cache. On pushes only (never for
/// a pull request), it copies this run's binaries from the slices into the remote,
/// signed. It compiles nothing and runs no third-party action: the signing key and
/// the write token meet only kiln, in one step.
fn publish_job(cx: &Ctx) -> Job {
    let mut j = Job::new("publish", "Publish to the remote cache", &cx.runner);
    j.timeout = SHORT_JOB_MINUTES;
    j.needs = vec!["build"];
    j.comment = Some("Pushes only: a pull request's builds never write to the shared cache.");
    j.condition = Some("github.event_name == 'push' && needs.build.result == 'success'".into());
    j.permissions = vec![("contents", Access::Read), ("packages", Access::Write)];
    j.steps.push(checkout(&cx.a.checkout, false));
    j.steps.push(download_slices(&cx.a.download));
    j.steps.extend(setup_steps(cx, false));
    j.steps.push(
        Step::named("This run's binaries into the local cache")
            .comment("Built by this run's build jobs (or verified there): vouched for here.")
            .env([kv("KILN_REMOTE_CACHE", SLICE)])
            .run("kiln cache pull --vouch"),
    );
    j.steps.push(
        Step::named("kiln cache push")
            .env([
                kv_why(
                    "GITHUB_TOKEN",
                    "${{ secrets.GITHUB_TOKEN }}",
                    "write access to the remote cache",
                ),
                signing_key_env(),
            ])
            .run("kiln cache push"),
    );
    j
}

/// `release`: tags `v*` attach the binaries to a GitHub Release. It collects them
/// itself, so a release doesn't depend on the image being pushed; with an image job it
/// waits for it (a tag whose image failed makes no release).
fn release_job(cx: &Ctx, after_image: bool, platforms: &[String]) -> Job {
    let mut arches: Vec<&str> = platforms
        .iter()
        .filter_map(|p| p.strip_prefix("linux/"))
        .collect();
    if arches.is_empty() {
        arches = vec!["amd64", "arm64"];
    }
    let mut j = Job::new("release", "GitHub Release", &cx.runner);
    j.needs = if after_image {
        vec!["plan", "build", "image"]
    } else {
        vec!["plan", "build"]
    };
    let mut condition = ships("startsWith(github.ref, 'refs/tags/v')");
    if after_image {
        condition.push_str(" && needs.image.result == 'success'");
    }
    j.condition = Some(condition);
    j.timeout = SHORT_JOB_MINUTES;
    j.permissions = vec![
        ("contents", Access::Write),
        ("id-token", Access::Write),
        ("attestations", Access::Write),
    ];
    j.steps = collect_steps(cx, "kiln-${{ runner.os }}-release-");
    j.steps.push(
        Step::named("Binaries, their SBOMs, .sha256 files and checksums.json").script([
            "set -euo pipefail",
            "mkdir -p dist",
            "# Asset names must differ between architectures: <bin>-linux-<arch>[.spdx.json].",
            "for f in artifacts/linux/*/*; do",
            "  arch=$(basename \"$(dirname \"$f\")\"); name=$(basename \"$f\")",
            "  case \"$name\" in",
            "    *.sha256|*.version) continue ;;",
            "    *.spdx.json|*.cdx.json) bin=${name%%.*}; cp \"$f\" \"dist/$bin-linux-$arch.${name#*.}\" ;;",
            "    *) cp \"$f\" \"dist/$name-linux-$arch\"",
            "       (cd dist && sha256sum \"$name-linux-$arch\" > \"$name-linux-$arch.sha256\") ;;",
            "  esac",
            "done",
            "cp artifacts/checksums.json dist/",
        ]),
    );
    j.steps.push(
        Step::uses(&cx.a.attest)
            .comment("Keyless SLSA provenance for every binary, in GitHub's attestation store.")
            .with([block(
                "subject-path",
                arches.iter().map(|a| format!("dist/*-linux-{a}")),
            )]),
    );
    j.steps.push(
        Step::named("GitHub Release")
            .env([kv("GH_TOKEN", "${{ secrets.GITHUB_TOKEN }}")])
            .run("gh release create \"$GITHUB_REF_NAME\" --repo \"$GITHUB_REPOSITORY\" --title \"$GITHUB_REF_NAME\" --generate-notes dist/*"),
    );
    j
}

/// The shared-directory cache a job's binaries travel in.
const SLICE: &str = "file://${{ runner.temp }}/kiln-slice";

/// The cached directories: cargo's downloads and kiln's cache. The image job restores
/// with the same list, since a cache only matches the paths it was saved with.
fn cache_paths() -> Entry {
    block(
        "path",
        [
            "~/.cargo/registry/index/",
            "~/.cargo/registry/cache/",
            "~/.cargo/git/db/",
            KILN_CACHE,
        ],
    )
}

/// The permissions of a job that may run a pull request's code: read-only.
fn read_only(remote: bool) -> Vec<(&'static str, Access)> {
    let mut p = vec![("contents", Access::Read)];
    if remote {
        p.push(("packages", Access::Read));
    }
    p
}

/// The environment of a step that reads the remote cache: a read-only token (ghcr.io
/// takes GITHUB_TOKEN) given to that step alone, and no uploads.
fn remote_read_env() -> [Entry; 2] {
    [
        kv_why(
            "GITHUB_TOKEN",
            "${{ secrets.GITHUB_TOKEN }}",
            "read access to the remote cache",
        ),
        kv_why(
            "KILN_CACHE_UPLOAD",
            "never",
            "only the publish job writes to the shared cache",
        ),
    ]
}

/// The signing key (`kiln cache keygen`), from a repository secret, for the one step
/// that signs: `kiln cache push` in the publish job, which compiles nothing. Empty
/// when the secret is not set (entries are then pushed unsigned).
fn signing_key_env() -> Entry {
    kv_why(
        "KILN_CACHE_SIGNING_KEY",
        "${{ secrets.KILN_CACHE_SIGNING_KEY }}",
        "signs what this run built; readers check [workspace.metadata.kiln.cache] trusted-keys",
    )
}

/// Downloads every build job's slice into one shared-directory cache.
fn download_slices(download: &str) -> Step {
    Step::uses(download).with([
        kv("pattern", "kiln-slice-*"),
        kv("path", "${{ runner.temp }}/kiln-slice"),
        kv("merge-multiple", "true"),
    ])
}

fn checkout(action: &str, full_history: bool) -> Step {
    let mut with = vec![kv_why(
        "persist-credentials",
        "false",
        "no token left in .git/config for later steps",
    )];
    if full_history {
        with.push(kv_why(
            "fetch-depth",
            "0",
            "`kiln affected` needs the merge-base",
        ));
    }
    Step::uses(action).with(with)
}

/// The configured setup commands, installing kiln, and (for building jobs) `kiln setup`.
fn setup_steps(cx: &Ctx, build: bool) -> Vec<Step> {
    let mut steps: Vec<Step> =
        cx.c.setup
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, cmd)| Step::named(format!("Setup {}", i + 1)).script(cmd.lines()))
            .collect();
    steps.push(match &cx.install {
        Some(command) => Step::named("Install kiln").script([
            "command -v kiln >/dev/null || \\".to_string(),
            format!("  {command}"),
        ]),
        None => Step::named(format!("Install kiln {}", cx.version))
            .comment("The prebuilt kiln of this version, checked against its release's SHA-256.")
            .env([kv("KILN_VERSION", format!("\"{}\"", cx.version))])
            .script(install_lines()),
    });
    if build {
        steps.push(Step::named("kiln setup (rustup targets, zig)").run("kiln setup"));
    }
    steps
}

/// The install script as a step runs it: without its comments and shebang.
fn install_lines() -> Vec<String> {
    INSTALL_SCRIPT
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(String::from)
        .collect()
}
