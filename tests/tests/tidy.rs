//! Tidy: repository-wide hygiene rules, checked by plain file scanning (no subprocess, no
//! build), in the style of rust-analyzer's `tidy` test.
//!
//! The walk starts at the workspace root (`CARGO_MANIFEST_DIR/..`) and skips `target/`
//! directories (including `fuzz/target`) and hidden directories. The rules:
//!
//! 1. every `.rs` file starts with a `//!` module doc comment;
//! 2. no `.rs` file is longer than [`MAX_LINES`] lines;
//! 3. a library crate (every member of the root `Cargo.toml`'s `members` list except
//!    [`NON_LIBRARY_MEMBERS`]) names no I/O crate ([`IO_CRATES`]) in its `[dependencies]`;
//! 4. non-test code of a library crate (`<crate>/src/`, up to a `#[cfg(test)]` line) makes
//!    no clock, RNG, file-system or socket call ([`IO_CALLS`]); a line may opt out only with
//!    a trailing `// tidy: allow-io (reason)`;
//! 5. non-test code of a library crate calls no `.unwrap()` / `.expect(`; a provably safe
//!    call may opt out with a trailing or preceding-line `// tidy: allow-unwrap (why)`.
//!
//! Comments (including doc examples, which are doctests) and string literals are masked out
//! before rules 4 and 5 look at a line. The tests at the end feed the checker small
//! in-memory samples, so each rule is shown to catch what it claims to catch.

use std::fmt;
use std::path::{Path, PathBuf};

/// Rule 2: the longest a `.rs` file may be.
const MAX_LINES: usize = 1000;

/// Workspace members that may do I/O (binaries and test harnesses); every other member is a
/// library crate.
const NON_LIBRARY_MEMBERS: &[&str] = &["node", "tests", "itests"];

/// Rule 3: crates a library may not depend on (async runtimes, servers, clients, CLI, global
/// RNG). Matched on the whole crate name, so `rand_chacha` is fine and `rand` is not.
const IO_CRATES: &[&str] = &[
    "tokio",
    "sqlx",
    "hyper",
    "jsonrpsee",
    "clap",
    "axum",
    "reqwest",
    "tower",
    "tower-http",
    "mio",
    "async-std",
    "rand",
];

/// Rule 4: calls that reach the clock, the RNG, the file system or the network.
const IO_CALLS: &[&str] = &[
    "SystemTime::now",
    "Instant::now",
    "std::fs",
    "std::net",
    "File::open",
    "thread_rng",
    "OsRng",
    "rand::random",
    "getrandom",
    "tokio::",
];

/// Rule 5: calls that panic on an error or a `None`.
const UNWRAP_CALLS: &[&str] = &[".unwrap()", ".expect("];

/// The opt-out marker of rule 4 (trailing comment only).
const ALLOW_IO: &str = "tidy: allow-io";
/// The opt-out marker of rule 5 (trailing or preceding-line comment).
const ALLOW_UNWRAP: &str = "tidy: allow-unwrap";

/// One of the tidy rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    DocHeader,
    FileLength,
    IoDependency,
    IoCall,
    Unwrap,
}

impl Rule {
    const ALL: [Rule; 5] = [
        Rule::DocHeader,
        Rule::FileLength,
        Rule::IoDependency,
        Rule::IoCall,
        Rule::Unwrap,
    ];

    fn title(self) -> &'static str {
        match self {
            Rule::DocHeader => "rule 1: the first line of a .rs file must be a `//!` doc comment",
            Rule::FileLength => "rule 2: a .rs file may have at most 1000 lines",
            Rule::IoDependency => "rule 3: a library crate must not depend on an I/O crate",
            Rule::IoCall => "rule 4: library code must not touch the clock, RNG, files or sockets",
            Rule::Unwrap => "rule 5: library code must not call .unwrap() / .expect(",
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Rule::DocHeader => {
                "start the file with `//! <what this file is for>` (before any `use` or attribute)"
            }
            Rule::FileLength => {
                "split the file by topic into submodules (or move tests into their own file)"
            }
            Rule::IoDependency => {
                "move the I/O into `node` and pass what the library needs as arguments or through \
                 a trait defined in the library (or make it a [dev-dependencies] entry if only \
                 tests need it); ARCHITECTURE.md, \"Architecture invariants\""
            }
            Rule::IoCall => {
                "take time, heights and entropy as arguments (or a trait the node implements); if \
                 the call is truly needed, end the line with `// tidy: allow-io (reason)`"
            }
            Rule::Unwrap => {
                "return an error (`?`, `ok_or`, `map_err`); if the call cannot fail, say why with \
                 `// tidy: allow-unwrap (why it cannot fail)` at the end of the line or on the \
                 line before"
            }
        }
    }
}

/// A broken rule at `path:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Violation {
    rule: Rule,
    path: String,
    line: usize,
    detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.path, self.line, self.detail)
    }
}

/// One source line split into its code (string and char literal contents blanked, comments
/// removed) and its `//` comment, if any.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct MaskedLine {
    code: String,
    comment: String,
}

/// Lexer state of [`mask`] carried across characters and lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    LineComment,
    BlockComment(usize),
    Str,
    RawStr(usize),
}

/// Splits Rust source into [`MaskedLine`]s: comments (line, block, doc) and the contents of
/// string, raw-string and char literals never reach `code`, so a pattern in a message or a
/// doc example is not mistaken for a call.
fn mask(text: &str) -> Vec<MaskedLine> {
    let chars: Vec<char> = text.chars().collect();
    let mut lines = Vec::new();
    let mut cur = MaskedLine::default();
    let mut state = Lex::Code;
    let mut ident = String::new();
    let mut i = 0;
    let at = |j: usize| chars.get(j).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            lines.push(std::mem::take(&mut cur));
            if state == Lex::LineComment {
                state = Lex::Code;
            }
            ident.clear();
            i += 1;
            continue;
        }
        match state {
            Lex::LineComment => cur.comment.push(c),
            Lex::BlockComment(depth) => {
                if c == '/' && at(i + 1) == '*' {
                    state = Lex::BlockComment(depth + 1);
                    i += 1;
                } else if c == '*' && at(i + 1) == '/' {
                    state = if depth == 1 {
                        Lex::Code
                    } else {
                        Lex::BlockComment(depth - 1)
                    };
                    i += 1;
                }
            }
            Lex::Str => {
                if c == '\\' {
                    cur.code.push(' ');
                    if at(i + 1) != '\n' {
                        i += 1;
                        cur.code.push(' ');
                    }
                } else if c == '"' {
                    cur.code.push('"');
                    state = Lex::Code;
                } else {
                    cur.code.push(' ');
                }
            }
            Lex::RawStr(hashes) => {
                if c == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    cur.code.push('"');
                    i += hashes;
                    state = Lex::Code;
                } else {
                    cur.code.push(' ');
                }
            }
            Lex::Code => {
                let raw_prefix = ident.is_empty() || ident == "b" || ident == "c";
                if c == '/' && at(i + 1) == '/' {
                    state = Lex::LineComment;
                    cur.comment.push_str("//");
                    i += 1;
                } else if c == '/' && at(i + 1) == '*' {
                    state = Lex::BlockComment(1);
                    i += 1;
                } else if c == '"' {
                    cur.code.push('"');
                    state = Lex::Str;
                } else if c == 'r' && raw_prefix && matches!(at(i + 1), '"' | '#') {
                    let hashes = (i + 1..chars.len())
                        .take_while(|&j| chars[j] == '#')
                        .count();
                    if at(i + 1 + hashes) == '"' {
                        cur.code.push_str("r\"");
                        i += 1 + hashes;
                        state = Lex::RawStr(hashes);
                    } else {
                        cur.code.push(c);
                    }
                } else if c == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
                    // A char or byte literal ('x', '\n', '\u{1F600}'), not a lifetime.
                    let from = if at(i + 1) == '\\' { i + 3 } else { i + 2 };
                    let end = (from..chars.len())
                        .find(|&j| chars[j] == '\'' || chars[j] == '\n')
                        .unwrap_or(chars.len() - 1);
                    cur.code.push_str("' '");
                    i = end;
                } else {
                    cur.code.push(c);
                }
            }
        }
        if state == Lex::Code && (c.is_alphanumeric() || c == '_') {
            ident.push(c);
        } else {
            ident.clear();
        }
        i += 1;
    }
    if !text.is_empty() && !text.ends_with('\n') {
        lines.push(cur);
    }
    lines
}

/// Whether `comment` holds `marker (reason)` with a non-empty reason. `Some(false)` when the
/// marker is there without a reason.
fn allow_marker(comment: &str, marker: &str) -> Option<bool> {
    let rest = &comment[comment.find(marker)? + marker.len()..];
    let reason = rest.trim_start().strip_prefix('(').and_then(|r| {
        let close = r.rfind(')')?;
        Some(r[..close].trim())
    });
    Some(reason.is_some_and(|r| !r.is_empty()))
}

/// Rules 1 and 2 for any `.rs` file; rules 4 and 5 too when `library_src` (the file is under
/// a library crate's `src/`).
fn check_rs_file(path: &str, text: &str, library_src: bool) -> Vec<Violation> {
    let mut out = Vec::new();
    let first = text.lines().next().unwrap_or("");
    if !first.starts_with("//!") {
        out.push(Violation {
            rule: Rule::DocHeader,
            path: path.to_owned(),
            line: 1,
            detail: format!("first line is `{}`", first.trim()),
        });
    }
    let count = text.lines().count();
    if count > MAX_LINES {
        out.push(Violation {
            rule: Rule::FileLength,
            path: path.to_owned(),
            line: count,
            detail: format!("{count} lines (limit {MAX_LINES})"),
        });
    }
    if !library_src {
        return out;
    }
    let lines = mask(text);
    let raw: Vec<&str> = text.lines().collect();
    let mut previous_comment = "";
    for (n, line) in lines.iter().enumerate() {
        let line_no = n + 1;
        let source = raw.get(n).map_or("", |l| l.trim());
        if line.code.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let mut report = |rule: Rule, detail: String| {
            out.push(Violation {
                rule,
                path: path.to_owned(),
                line: line_no,
                detail,
            })
        };
        if let Some(call) = IO_CALLS.iter().find(|p| line.code.contains(*p)) {
            match allow_marker(&line.comment, ALLOW_IO) {
                Some(true) => {}
                Some(false) => report(Rule::IoCall, format!("`{ALLOW_IO}` needs a (reason)")),
                None => report(Rule::IoCall, format!("`{call}` in `{source}`")),
            }
        }
        if let Some(call) = UNWRAP_CALLS.iter().find(|p| line.code.contains(*p)) {
            let here = allow_marker(&line.comment, ALLOW_UNWRAP);
            let above = if previous_comment.trim_start().starts_with("//") {
                allow_marker(previous_comment, ALLOW_UNWRAP)
            } else {
                None
            };
            match here.or(above) {
                Some(true) => {}
                Some(false) => report(Rule::Unwrap, format!("`{ALLOW_UNWRAP}` needs a (reason)")),
                None => report(Rule::Unwrap, format!("`{call}` in `{source}`")),
            }
        }
        // Only a comment-only line counts as "the line before" for an allow-unwrap marker.
        previous_comment = if line.code.trim().is_empty() {
            &line.comment
        } else {
            ""
        };
    }
    out
}

/// The name of a TOML key (`tokio`, `"tokio"`, `tokio.workspace`): its first dotted part,
/// unquoted.
fn key_name(key: &str) -> String {
    let key = key.trim();
    let first = if let Some(quoted) = key.strip_prefix('"') {
        quoted.split('"').next().unwrap_or("")
    } else {
        key.split('.').next().unwrap_or("")
    };
    first.trim().to_owned()
}

/// The crate names a dependency line refers to: its key, and its `package = "..."` rename.
fn dependency_names(key: &str, value: &str) -> Vec<String> {
    let mut names = vec![key_name(key)];
    if let Some(pos) = value.find("package") {
        let rest = value[pos + "package".len()..].trim_start();
        if let Some(rest) = rest.strip_prefix('=') {
            if let Some(quoted) = rest.trim_start().strip_prefix('"') {
                names.push(quoted.split('"').next().unwrap_or("").to_owned());
            }
        }
    }
    names
}

/// Rule 3 for one library crate's `Cargo.toml`: `[dependencies]`, `[dependencies.<name>]`
/// and their `[target.'cfg(..)'.…]` forms; dev- and build-dependencies are not checked.
fn check_manifest(path: &str, text: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    // In a `[dependencies]` section / in a `[dependencies.<name>]` table.
    let (mut in_deps, mut in_table) = (false, false);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut found = Vec::new();
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']').trim();
            let header = header
                .strip_prefix("target.")
                .and_then(|t| t.find(".dependencies").map(|p| &t[p + 1..]))
                .unwrap_or(header);
            in_deps = header == "dependencies";
            in_table = header.starts_with("dependencies.");
            if let Some(table) = header.strip_prefix("dependencies.") {
                found.push(key_name(table));
            }
        } else if let Some((key, value)) = line.split_once('=') {
            if in_deps {
                found = dependency_names(key, value);
            } else if in_table && key.trim() == "package" {
                found.push(value.trim().trim_matches('"').to_owned());
            }
        }
        for name in found {
            if IO_CRATES.contains(&name.as_str()) {
                out.push(Violation {
                    rule: Rule::IoDependency,
                    path: path.to_owned(),
                    line: n + 1,
                    detail: format!("depends on `{name}`: `{line}`"),
                });
            }
        }
    }
    out
}

/// The `members` list of the root `Cargo.toml`'s `[workspace]` section.
fn workspace_members(root_manifest: &str) -> Vec<String> {
    let mut section = "";
    let mut list = String::new();
    let mut collecting = false;
    for raw in root_manifest.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if !collecting && line.starts_with('[') {
            section = line;
            continue;
        }
        if !collecting && section == "[workspace]" {
            if let Some((key, value)) = line.split_once('=') {
                collecting = key.trim() == "members";
                if collecting {
                    list.clear();
                    list.push_str(value);
                }
            }
        } else if collecting {
            list.push_str(line);
        }
        if collecting && list.contains(']') {
            break;
        }
    }
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(|m| m.trim_end_matches('/').to_owned())
        .collect()
}

/// The library crates among `members`: all but [`NON_LIBRARY_MEMBERS`].
fn library_crates(members: &[String]) -> Vec<String> {
    members
        .iter()
        .filter(|m| !NON_LIBRARY_MEMBERS.contains(&m.as_str()))
        .cloned()
        .collect()
}

/// Every `.rs` file under `dir`, skipping `target` and hidden directories, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// What a walk of the repository checked and found.
struct Report {
    rust_files: usize,
    library_crates: Vec<String>,
    violations: Vec<Violation>,
}

/// Runs every rule over the repository at `root`.
fn check_repo(root: &Path) -> Report {
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let rel = |p: &Path| {
        let r = p.strip_prefix(root).unwrap_or(p);
        r.to_string_lossy().replace('\\', "/")
    };
    let members = workspace_members(&read(&root.join("Cargo.toml")));
    let libraries = library_crates(&members);
    let mut violations = Vec::new();
    for lib in &libraries {
        let manifest = root.join(lib).join("Cargo.toml");
        violations.extend(check_manifest(&rel(&manifest), &read(&manifest)));
    }
    let mut files = Vec::new();
    rust_files(root, &mut files);
    for file in &files {
        let library_src = libraries
            .iter()
            .any(|l| file.starts_with(root.join(l).join("src")));
        violations.extend(check_rs_file(&rel(file), &read(file), library_src));
    }
    violations.sort_by(|a, b| (a.rule, &a.path, a.line).cmp(&(b.rule, &b.path, b.line)));
    Report {
        rust_files: files.len(),
        library_crates: libraries,
        violations,
    }
}

/// The failure message: every offender, grouped by rule, each group with how to fix it.
fn render(violations: &[Violation]) -> String {
    let mut msg = format!(
        "tidy: {} problem(s); fix each one below (see tests/tests/tidy.rs for the rules)\n",
        violations.len()
    );
    for rule in Rule::ALL {
        let group: Vec<&Violation> = violations.iter().filter(|v| v.rule == rule).collect();
        if group.is_empty() {
            continue;
        }
        msg.push_str(&format!("\n{} ({}):\n", rule.title(), group.len()));
        for v in group {
            msg.push_str(&format!("  {v}\n"));
        }
        msg.push_str(&format!("  how to fix: {}\n", rule.fix()));
    }
    msg
}

/// The workspace root: the parent of this crate's directory.
fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

#[test]
fn tidy() {
    let report = check_repo(&repo_root());
    // Guards against a walk that silently finds nothing.
    assert!(
        report.rust_files > 50,
        "only {} .rs files",
        report.rust_files
    );
    assert!(
        report.library_crates.len() >= 6,
        "library crates: {:?}",
        report.library_crates
    );
    assert!(
        report.violations.is_empty(),
        "{}",
        render(&report.violations)
    );
}

/// The rules broken by checking `text` as library source.
fn rules_of(text: &str) -> Vec<Rule> {
    check_rs_file("lib/src/x.rs", text, true)
        .into_iter()
        .map(|v| v.rule)
        .collect()
}

#[test]
fn rule_1_catches_a_missing_doc_header() {
    let v = check_rs_file("a.rs", "use std::fmt;\n", false);
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].rule, v[0].line), (Rule::DocHeader, 1));
    assert!(check_rs_file("a.rs", "// plain comment\n", false)[0].rule == Rule::DocHeader);
    assert!(check_rs_file("a.rs", "", false)[0].rule == Rule::DocHeader);
    assert!(check_rs_file("a.rs", "//! Doc.\nuse std::fmt;\n", false).is_empty());
}

#[test]
fn rule_2_catches_a_long_file() {
    let at_limit = format!("//! Doc.\n{}", "fn f() {}\n".repeat(MAX_LINES - 1));
    assert!(check_rs_file("a.rs", &at_limit, false).is_empty());
    let over = format!("{at_limit}fn g() {{}}\n");
    let v = check_rs_file("a.rs", &over, false);
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].rule, v[0].line), (Rule::FileLength, MAX_LINES + 1));
}

#[test]
fn rule_3_catches_io_dependencies_only_in_dependencies() {
    let manifest = r#"[package]
name = "fulmen-x"

[dependencies]
bitcoin.workspace = true
tokio.workspace = true
rand = "0.8"
rand_chacha.workspace = true
tower-http = { version = "0.6" }
"hyper" = "1"
runtime = { package = "async-std", version = "1" }

[dependencies.reqwest]
version = "0.12"

[dependencies.web]
package = "axum"

[target.'cfg(unix)'.dependencies]
mio = "1"

[dev-dependencies]
tokio.workspace = true
clap = "4"

[build-dependencies]
sqlx = "0.8"
"#;
    let v = check_manifest("x/Cargo.toml", manifest);
    let found: Vec<(usize, &str)> = v
        .iter()
        .map(|v| (v.line, v.detail.split('`').nth(1).unwrap()))
        .collect();
    assert_eq!(
        found,
        [
            (6, "tokio"),
            (7, "rand"),
            (9, "tower-http"),
            (10, "hyper"),
            (11, "async-std"),
            (13, "reqwest"),
            (17, "axum"),
            (20, "mio"),
        ]
    );
    assert!(v.iter().all(|v| v.rule == Rule::IoDependency));
}

#[test]
fn rule_3_reads_the_library_crates_from_the_workspace_members() {
    let root = r#"[workspace]
resolver = "2"
members = [
    "chain", # the simulated chain
    "node",
    "tests",
    "itests",
    "manager",
    "watchtower/",
]
exclude = ["fuzz"]

[workspace.dependencies]
members = ["not-this"]
"#;
    let members = workspace_members(root);
    assert_eq!(
        members,
        ["chain", "node", "tests", "itests", "manager", "watchtower"]
    );
    assert_eq!(library_crates(&members), ["chain", "manager", "watchtower"]);
    let one_line = "[workspace]\nmembers = [\"a\", \"node\"]\n";
    assert_eq!(library_crates(&workspace_members(one_line)), ["a"]);
}

#[test]
fn rule_4_catches_io_calls_in_library_code() {
    for call in IO_CALLS {
        let text = format!("//! Doc.\nfn f() {{ let _ = {call}x; }}\n");
        assert_eq!(rules_of(&text), [Rule::IoCall], "{call}");
    }
    let v = check_rs_file(
        "lib/src/x.rs",
        "//! Doc.\n\nlet t = Instant::now();\n",
        true,
    );
    assert_eq!((v[0].path.as_str(), v[0].line), ("lib/src/x.rs", 3));
    // Opt-out: a trailing comment with a reason, and nothing else.
    let allowed = "//! D.\nlet t = Instant::now(); // tidy: allow-io (a benchmark timer)\n";
    assert!(rules_of(allowed).is_empty());
    let no_reason = "//! D.\nlet t = Instant::now(); // tidy: allow-io\n";
    assert_eq!(rules_of(no_reason), [Rule::IoCall]);
    let empty_reason = "//! D.\nlet t = Instant::now(); // tidy: allow-io ( )\n";
    assert_eq!(rules_of(empty_reason), [Rule::IoCall]);
    let line_above = "//! D.\n// tidy: allow-io (reason)\nlet t = Instant::now();\n";
    assert_eq!(rules_of(line_above), [Rule::IoCall]);
    // Not code: comments, doc examples, strings; not library source; test code.
    assert!(rules_of("//! Uses `std::fs`.\n/// `OsRng`\n// tokio::spawn\n").is_empty());
    assert!(rules_of("//! D.\nlet s = \"std::net is not used\";\n").is_empty());
    assert!(rules_of("//! D.\n/* SystemTime::now\n thread_rng */ fn f() {}\n").is_empty());
    assert!(check_rs_file("x/tests/t.rs", "//! D.\nstd::fs::read(p);\n", false).is_empty());
    let tail = "//! D.\nfn f() {}\n#[cfg(test)]\nmod tests { fn t() { std::fs::read(p); } }\n";
    assert!(rules_of(tail).is_empty());
}

#[test]
fn rule_5_catches_unwrap_and_expect_in_library_code() {
    let v = check_rs_file("lib/src/x.rs", "//! D.\nlet a = b.unwrap();\n", true);
    assert_eq!((v[0].rule, v[0].line), (Rule::Unwrap, 2));
    assert_eq!(
        rules_of("//! D.\nlet a = b.expect(\"set\");\n"),
        [Rule::Unwrap]
    );
    assert_eq!(
        rules_of("//! D.\nlet a = b\n    .unwrap();\n"),
        [Rule::Unwrap]
    );
    assert_eq!(
        rules_of("//! D.\nlet a = b.unwrap(); let c = d.unwrap();\n"),
        [Rule::Unwrap]
    );
    // Opt-outs: trailing, or a comment-only line just above; a reason is required.
    assert!(rules_of("//! D.\nlet a = b.unwrap(); // tidy: allow-unwrap (b is Some)\n").is_empty());
    assert!(
        rules_of("//! D.\n// tidy: allow-unwrap (b is Some)\nlet a = b.unwrap();\n").is_empty()
    );
    assert_eq!(
        rules_of("//! D.\nlet a = b.unwrap(); // tidy: allow-unwrap\n"),
        [Rule::Unwrap]
    );
    let two_above = "//! D.\n// tidy: allow-unwrap (b is Some)\nlet x = 1;\nlet a = b.unwrap();\n";
    assert_eq!(rules_of(two_above), [Rule::Unwrap]);
    let code_above = "//! D.\nf(); // tidy: allow-unwrap (for f)\nlet a = b.unwrap();\n";
    assert_eq!(rules_of(code_above), [Rule::Unwrap]);
    // The io marker does not excuse an unwrap.
    assert_eq!(
        rules_of("//! D.\nlet a = b.unwrap(); // tidy: allow-io (x)\n"),
        [Rule::Unwrap]
    );
    // Not calls: the fallible siblings, doc examples, strings, test code.
    assert!(rules_of("//! D.\nlet a = b.unwrap_or(0).expect_err(e);\n").is_empty());
    assert!(rules_of("//! D.\n/// let a = b.unwrap();\nfn f() {}\n").is_empty());
    assert!(rules_of("//! D.\nlet m = \"call .expect( here\";\n").is_empty());
    assert!(rules_of("//! D.\n#[cfg(test)]\nmod tests { fn t() { b.unwrap(); } }\n").is_empty());
    assert!(check_rs_file("x/benches/b.rs", "//! D.\nb.unwrap();\n", false).is_empty());
}

#[test]
fn masking_keeps_code_and_drops_literals_and_comments() {
    let text = "let a = r#\"x \" .unwrap()\"#; let q = '\"'; f.unwrap();\n\
                fn g<'a>(s: &'a str) -> char { '\\'' } // c.unwrap()\n\
                let b = \"multi\n line .unwrap()\"; /* .unwrap()\n .unwrap() */ h();\n\
                let e = b'\\n'; let s = \"esc \\\" .unwrap()\"; i.unwrap();\n";
    let code: Vec<String> = mask(text).into_iter().map(|l| l.code).collect();
    let calls: Vec<usize> = code
        .iter()
        .map(|c| c.matches(".unwrap()").count())
        .collect();
    assert_eq!(calls, [1, 0, 0, 0, 0, 1], "{code:#?}");
    assert!(code[1].contains("fn g<'a>(s: &'a str)"), "{}", code[1]);
    assert_eq!(mask(text)[1].comment, "// c.unwrap()");
    assert!(code[4].ends_with(" h();"), "{}", code[4]);
}

#[test]
fn failure_message_lists_every_offender_with_a_fix() {
    let mut v = check_rs_file("a/src/x.rs", "fn f() { b.unwrap(); }\n", true);
    v.extend(check_manifest(
        "a/Cargo.toml",
        "[dependencies]\ntokio = \"1\"\n",
    ));
    let msg = render(&v);
    assert!(msg.contains("tidy: 3 problem(s)"), "{msg}");
    assert!(msg.contains("a/src/x.rs:1: first line is `fn f() { b.unwrap(); }`"));
    assert!(msg.contains("a/src/x.rs:1: `.unwrap()` in `fn f() { b.unwrap(); }`"));
    assert!(msg.contains("a/Cargo.toml:2: depends on `tokio`"));
    assert_eq!(msg.matches("how to fix:").count(), 3);
}
