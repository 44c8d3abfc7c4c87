//! The workflow as data: jobs, steps, permissions, and one renderer that writes it.
//!
//! The YAML is rendered by hand rather than serialized so that comments and key
//! order stay readable and the output is byte-stable across serde versions.

use std::fmt::Write;

/// A scalar or a `|` block.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `key: value`.
    Scalar(String),
    /// `key: |` followed by one line each.
    Block(Vec<String>),
}

/// One line of a mapping (`with:`, `env:`, `outputs:`): a key or a comment.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// `key: value  # comment`.
    Pair {
        key: String,
        value: Value,
        comment: Option<&'static str>,
    },
    /// `# comment` on its own line.
    Comment(&'static str),
}

/// `key: value`.
pub(crate) fn kv(key: &str, value: impl Into<String>) -> Entry {
    Entry::Pair {
        key: key.into(),
        value: Value::Scalar(value.into()),
        comment: None,
    }
}

/// `key: value  # why`.
pub(crate) fn kv_why(key: &str, value: impl Into<String>, why: &'static str) -> Entry {
    Entry::Pair {
        key: key.into(),
        value: Value::Scalar(value.into()),
        comment: Some(why),
    }
}

/// `key: |` and its lines.
pub(crate) fn block<S: Into<String>>(key: &str, lines: impl IntoIterator<Item = S>) -> Entry {
    Entry::Pair {
        key: key.into(),
        value: Value::Block(lines.into_iter().map(Into::into).collect()),
        comment: None,
    }
}

/// What a step runs.
#[derive(Debug, Clone)]
pub(crate) enum Run {
    /// `run: command`.
    Line(String),
    /// `run: |` and a script.
    Script(Vec<String>),
}

/// A step: an action (`uses`) or a shell script (`run`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Step {
    /// A comment above the step: why it is there.
    pub(crate) comment: Option<&'static str>,
    pub(crate) name: Option<String>,
    pub(crate) id: Option<&'static str>,
    pub(crate) uses: Option<String>,
    /// `if:`.
    pub(crate) condition: Option<String>,
    pub(crate) with: Vec<Entry>,
    pub(crate) env: Vec<Entry>,
    pub(crate) run: Option<Run>,
}

impl Step {
    /// A step using `action`.
    pub(crate) fn uses(action: impl Into<String>) -> Self {
        Self {
            uses: Some(action.into()),
            ..Self::default()
        }
    }

    /// A named step.
    pub(crate) fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// Makes a named step use `action` (a local action, after the checkout).
    pub(crate) fn uses_local(mut self, action: &str) -> Self {
        self.uses = Some(action.into());
        self
    }

    pub(crate) fn with(mut self, entries: impl IntoIterator<Item = Entry>) -> Self {
        self.with.extend(entries);
        self
    }

    pub(crate) fn env(mut self, entries: impl IntoIterator<Item = Entry>) -> Self {
        self.env.extend(entries);
        self
    }

    pub(crate) fn comment(mut self, why: &'static str) -> Self {
        self.comment = Some(why);
        self
    }

    pub(crate) fn condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = Some(condition.into());
        self
    }

    pub(crate) fn id(mut self, id: &'static str) -> Self {
        self.id = Some(id);
        self
    }

    pub(crate) fn run(mut self, command: impl Into<String>) -> Self {
        self.run = Some(Run::Line(command.into()));
        self
    }

    pub(crate) fn script<S: Into<String>>(mut self, lines: impl IntoIterator<Item = S>) -> Self {
        self.run = Some(Run::Script(lines.into_iter().map(Into::into).collect()));
        self
    }
}

/// A token permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// A job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) id: &'static str,
    pub(crate) name: String,
    pub(crate) needs: Vec<&'static str>,
    /// A comment above `if:`: why the job runs when it does.
    pub(crate) comment: Option<&'static str>,
    pub(crate) condition: Option<String>,
    pub(crate) runs_on: String,
    /// `timeout-minutes`: a hung job is cancelled instead of burning the default 6 hours.
    pub(crate) timeout: u32,
    pub(crate) permissions: Vec<(&'static str, Access)>,
    pub(crate) outputs: Vec<Entry>,
    /// `strategy.matrix`, with `fail-fast: false`.
    pub(crate) matrix: Option<String>,
    pub(crate) steps: Vec<Step>,
}

impl Job {
    pub(crate) fn new(id: &'static str, name: impl Into<String>, runs_on: &str) -> Self {
        Self {
            id,
            name: name.into(),
            needs: Vec::new(),
            comment: None,
            condition: None,
            runs_on: runs_on.into(),
            timeout: 30,
            permissions: vec![("contents", Access::Read)],
            outputs: Vec::new(),
            matrix: None,
            steps: Vec::new(),
        }
    }
}

/// The whole workflow.
#[derive(Debug, Clone)]
pub(crate) struct Workflow {
    pub(crate) header: Vec<&'static str>,
    pub(crate) name: &'static str,
    pub(crate) branch: String,
    pub(crate) env: Vec<Entry>,
    pub(crate) jobs: Vec<Job>,
}

/// Writes YAML with two-space indentation.
struct Writer(String);

impl Writer {
    fn line(&mut self, indent: usize, text: &str) {
        if text.is_empty() {
            self.0.push('\n');
        } else {
            let _ = writeln!(self.0, "{}{text}", "  ".repeat(indent));
        }
    }

    fn entries(&mut self, indent: usize, entries: &[Entry]) {
        for e in entries {
            match e {
                Entry::Comment(c) => self.line(indent, &format!("# {c}")),
                Entry::Pair {
                    key,
                    value: Value::Scalar(v),
                    comment,
                } => {
                    let why = comment.map(|c| format!("  # {c}")).unwrap_or_default();
                    self.line(indent, &format!("{key}: {v}{why}"));
                }
                Entry::Pair {
                    key,
                    value: Value::Block(lines),
                    ..
                } => {
                    self.line(indent, &format!("{key}: |"));
                    for l in lines {
                        self.line(indent + 1, l);
                    }
                }
            }
        }
    }

    fn mapping(&mut self, indent: usize, key: &str, entries: &[Entry]) {
        if !entries.is_empty() {
            self.line(indent, &format!("{key}:"));
            self.entries(indent + 1, entries);
        }
    }

    fn step(&mut self, s: &Step) {
        if let Some(c) = s.comment {
            self.line(3, &format!("# {c}"));
        }
        let mut first = true;
        let mut head = |w: &mut Self, text: String| {
            let lead = if first { "- " } else { "  " };
            first = false;
            w.line(3, &format!("{lead}{text}"));
        };
        if let Some(n) = &s.name {
            head(self, format!("name: {n}"));
        }
        if let Some(id) = s.id {
            head(self, format!("id: {id}"));
        }
        if let Some(u) = &s.uses {
            head(self, format!("uses: {u}"));
        }
        if let Some(c) = &s.condition {
            head(self, format!("if: {c}"));
        }
        self.mapping(4, "with", &s.with);
        self.mapping(4, "env", &s.env);
        match &s.run {
            Some(Run::Line(c)) => self.line(4, &format!("run: {c}")),
            Some(Run::Script(lines)) => {
                self.line(4, "run: |");
                for l in lines {
                    self.line(5, l);
                }
            }
            None => {}
        }
    }

    fn job(&mut self, j: &Job) {
        self.line(1, &format!("{}:", j.id));
        self.line(2, &format!("name: {}", j.name));
        match j.needs.as_slice() {
            [] => {}
            [one] => self.line(2, &format!("needs: {one}")),
            many => self.line(2, &format!("needs: [{}]", many.join(", "))),
        }
        if let Some(c) = j.comment {
            self.line(2, &format!("# {c}"));
        }
        if let Some(c) = &j.condition {
            self.line(2, &format!("if: {c}"));
        }
        self.line(2, &format!("runs-on: {}", j.runs_on));
        self.line(2, &format!("timeout-minutes: {}", j.timeout));
        self.line(2, "permissions:");
        for (scope, access) in &j.permissions {
            let a = match access {
                Access::Read => "read",
                Access::Write => "write",
            };
            self.line(3, &format!("{scope}: {a}"));
        }
        self.mapping(2, "outputs", &j.outputs);
        if let Some(m) = &j.matrix {
            self.line(2, "strategy:");
            self.line(3, "fail-fast: false");
            self.line(3, &format!("matrix: {m}"));
        }
        self.line(2, "steps:");
        for s in &j.steps {
            self.step(s);
        }
    }
}

impl Workflow {
    /// The YAML text.
    pub(crate) fn render(&self) -> String {
        let mut w = Writer(String::new());
        for h in &self.header {
            w.line(0, format!("# {h}").trim_end());
        }
        w.line(0, &format!("name: {}", self.name));
        w.line(0, "");
        w.line(0, "on:");
        w.line(1, "push:");
        w.line(2, &format!("branches: [{}]", self.branch));
        w.line(2, "tags: [\"v*\"]");
        w.line(1, "pull_request:");
        w.line(0, "");
        w.line(
            0,
            "# One run per ref; a newer push to a pull request cancels the older run.",
        );
        w.line(0, "concurrency:");
        w.line(1, "group: kiln-${{ github.ref }}");
        w.line(
            1,
            "cancel-in-progress: ${{ github.event_name == 'pull_request' }}",
        );
        w.line(0, "");
        w.line(0, "permissions:");
        w.line(1, "contents: read");
        w.line(0, "");
        w.mapping(0, "env", &self.env);
        w.line(0, "");
        w.line(0, "jobs:");
        for (i, j) in self.jobs.iter().enumerate() {
            if i > 0 {
                w.line(0, "");
            }
            w.job(j);
        }
        w.0
    }
}
