//! Dependencies between modules point one way (ARCHITECTURE: "config never talks to the
//! network, the registry client never prints, only the top of the program chooses
//! threads, writes files and picks the exit code"). Each module may use only modules of
//! a lower layer; this test reads every `crate::…` path in `src/` and fails on any other.
//! Some lower modules are off limits as well ([`FORBIDDEN`]), only the output layers
//! print or write files ([`OUTPUT_LAYERS`]; the OCI layout end writes its own files,
//! [`FILE_STORES`]), and only the HTTP layer uses ureq
//! ([`CRATES_OF_ONE_MODULE`]). No function is longer than [`MAX_FUNCTION_LINES`], no
//! file's code longer than [`MAX_FILE_LINES`].

use std::path::Path;

/// Layers, lowest first. A module may use modules in earlier layers (and its own files).
const LAYERS: &[&[&str]] = &[
    &[
        "error",
        "digest",
        "progress",
        "hints",
        "proxy_url",
        "kind",
        "signing",
        "threads",
    ],
    &["reference", "http", "manifest", "report"],
    &["config"],
    &["credentials", "kube", "github"],
    &["registry"],
    &["plan", "end", "vendor"],
    &["copy", "prune", "cli", "layout"],
    &["commands"],
];

/// Uses the layers would allow but the design does not: (module, module it must not use, why).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "config",
        "http",
        "reading the files never touches the network (a proxy URL is checked with proxy_url)",
    ),
    (
        "registry",
        "config",
        "the registry layer takes credentials from `credentials`, never the files' types",
    ),
    (
        "copy",
        "registry",
        "the copy talks to its ends only through end::End, whatever kind they are",
    ),
];

fn forbidden(module: &str, used: &str) -> Option<&'static str> {
    FORBIDDEN
        .iter()
        .find(|(from, to, _)| *from == module && *to == used)
        .map(|(_, _, why)| *why)
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS"))
}

fn modules_used(text: &str) -> Vec<String> {
    let mut used: Vec<String> = text
        .match_indices("crate::")
        .map(|(i, _)| {
            text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect();
    used.sort();
    used.dedup();
    used
}

#[test]
fn modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for entry in walk(&src) {
        let relative = entry.strip_prefix(&src).unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        checked += 1;
        let layer = layer_of(&module);
        for used in modules_used(&std::fs::read_to_string(&entry).unwrap()) {
            if used != module && layer_of(&used) >= layer {
                violations.push(format!("{} uses crate::{used}", relative.display()));
            } else if let Some(why) = forbidden(&module, &used) {
                violations.push(format!("{} uses crate::{used}: {why}", relative.display()));
            }
        }
    }
    assert!(checked >= 20, "only {checked} files checked");
    assert!(
        violations.is_empty(),
        "upward, sideways or forbidden dependencies:\n{}",
        violations.join("\n")
    );
}

/// Modules that may print or write files: the top of the program, the human log and the
/// GitHub output. Every other module returns data and errors.
const OUTPUT_LAYERS: [&str; 4] = ["main", "commands", "progress", "github"];

/// What prints or writes a file.
const OUTPUT_CALLS: [&str; 9] = [
    "println!",
    "print!",
    "eprintln!",
    "eprint!",
    "io::stdout",
    "io::stderr",
    "fs::write",
    "File::create",
    "OpenOptions",
];

/// The output calls in `text`, before its unit tests (which may write scratch files).
fn output_calls(text: &str) -> Vec<&'static str> {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    let starts_a_word = |i: usize| {
        !code[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    };
    OUTPUT_CALLS
        .into_iter()
        .filter(|call| code.match_indices(call).any(|(i, _)| starts_a_word(i)))
        .collect()
}

/// Modules that write files but never print: (module, why). An OCI image layout is a
/// store of images as a registry is; its end writes blobs, `index.json` and the sidecar.
const FILE_STORES: &[(&str, &str)] = &[(
    "layout",
    "the OCI layout end writes the layout (blobs, index.json, sidecar), as a registry's end PUTs",
)];

/// The calls in [`OUTPUT_CALLS`] that write files (the rest print).
const FILE_WRITES: [&str; 3] = ["fs::write", "File::create", "OpenOptions"];

#[test]
fn only_the_output_layers_print_or_write_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for entry in walk(&src) {
        let relative = entry.strip_prefix(&src).unwrap();
        let module = relative.components().next().unwrap().as_os_str();
        let module = module.to_string_lossy();
        if OUTPUT_LAYERS.contains(&module.trim_end_matches(".rs")) {
            continue;
        }
        let store = FILE_STORES
            .iter()
            .any(|(name, _)| *name == module.trim_end_matches(".rs"));
        for call in output_calls(&std::fs::read_to_string(&entry).unwrap()) {
            if store && FILE_WRITES.contains(&call) {
                continue;
            }
            violations.push(format!("{} uses {call}", relative.display()));
        }
    }
    assert!(
        violations.is_empty(),
        "printing or writing files outside {OUTPUT_LAYERS:?}:\n{}",
        violations.join("\n")
    );
}

/// Crates that one module alone may use: (crate, the module, why). The others talk to it
/// through that module's types.
const CRATES_OF_ONE_MODULE: &[(&str, &str, &str)] = &[(
    "ureq",
    "http",
    "the HTTP layer is the only ureq user: agents, TLS, proxies, bounds and retries in one place",
)];

/// Whether `text` names the crate `name` in code, tests included (`use ureq…`,
/// `ureq::…`); prose that mentions it does not count.
fn names_crate(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = &text[i + name.len()..];
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            && (after.starts_with("::") || after.starts_with(';') || after.starts_with(" as "))
    })
}

#[test]
fn crates_of_one_module_are_used_there_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut seen = vec![false; CRATES_OF_ONE_MODULE.len()];
    for entry in walk(&src) {
        let relative = entry.strip_prefix(&src).unwrap();
        let module = relative.components().next().unwrap().as_os_str();
        let module = module.to_string_lossy();
        let module = module.trim_end_matches(".rs");
        let text = std::fs::read_to_string(&entry).unwrap();
        for (i, (name, owner, why)) in CRATES_OF_ONE_MODULE.iter().enumerate() {
            if !names_crate(&text, name) {
                continue;
            }
            seen[i] = true;
            if module != *owner {
                violations.push(format!("{} uses {name}: {why}", relative.display()));
            }
        }
    }
    assert!(seen.iter().all(|s| *s), "a crate is used nowhere: {seen:?}");
    assert!(
        violations.is_empty(),
        "crates used outside their module:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_sees_a_violation() {
    // Guards the test above against passing vacuously.
    assert_eq!(
        modules_used("use crate::commands::sync; crate::registry::Repo"),
        ["commands", "registry"]
    );
    assert!(layer_of("commands") > layer_of("registry"));
    assert!(layer_of("registry") > layer_of("http"));
    assert!(layer_of("config") > layer_of("reference"));
    assert!(
        layer_of("config") > layer_of("http"),
        "the layers alone allow it"
    );
    assert!(forbidden("config", "http").is_some());
    assert!(forbidden("config", "proxy_url").is_none());
    assert_eq!(
        output_calls("fn f() { eprintln!(\"x\"); }\n#[cfg(test)]\nfn t() { std::fs::write(p, b) }"),
        ["eprintln!"]
    );
    assert!(names_crate("use ureq::http::Method;", "ureq"));
    assert!(names_crate("fn f(e: ureq::Error) {}", "ureq"));
    assert!(names_crate("use ureq;", "ureq"));
    assert!(!names_crate("//! the only module that uses ureq", "ureq"));
    assert!(!names_crate(
        "let my_ureq = 1; crate::ureq_like::x()",
        "ureq"
    ));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Longest function, and longest file (its code before any `#[cfg(test)]` module), in `src/`.
const MAX_FUNCTION_LINES: usize = 80;
const MAX_FILE_LINES: usize = 500;

/// The functions of a file longer than [`MAX_FUNCTION_LINES`] (`fn` line to its closing
/// brace at the same indentation), and its code length.
fn long_functions(text: &str) -> (Vec<(String, usize)>, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let code = (lines.iter())
        .position(|l| l.trim_start().starts_with("#[cfg(test)]"))
        .unwrap_or(lines.len());
    let mut long = Vec::new();
    let mut i = 0;
    while i < code {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let signature = trimmed
            .split_once("fn ")
            .filter(|(before, _)| {
                before
                    .split_whitespace()
                    .all(|w| w.starts_with("pub") || ["const", "unsafe", "async"].contains(&w))
            })
            .map(|(_, after)| after);
        // A declaration without a body, or a body on the same line, is short.
        if let Some(after) = signature
            && !trimmed.ends_with(';')
            && !trimmed.ends_with('}')
        {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let end = (i + 1..lines.len())
                .find(|&j| lines[j] == format!("{indent}}}"))
                .unwrap_or(i);
            if end + 1 - i > MAX_FUNCTION_LINES {
                long.push((name, end + 1 - i));
            }
            i = end;
        }
        i += 1;
    }
    (long, code)
}

#[test]
fn functions_and_files_stay_short() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for path in walk(&src) {
        let (long, code) = long_functions(&std::fs::read_to_string(&path).unwrap());
        let name = path.strip_prefix(&src).unwrap().display().to_string();
        if code > MAX_FILE_LINES {
            problems.push(format!(
                "{name}: {code} lines of code (at most {MAX_FILE_LINES})"
            ));
        }
        for (function, lines) in long {
            problems.push(format!(
                "{name}: fn {function} has {lines} lines (at most {MAX_FUNCTION_LINES})"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_length_check_sees_a_long_function_and_ends_at_its_brace() {
    let body = "    let x = 1;\n".repeat(MAX_FUNCTION_LINES);
    let text =
        format!("fn short() {{\n}}\n\npub(crate) fn long() {{\n{body}}}\n\nfn after() {{}}\n");
    let (long, code) = long_functions(&text);
    assert_eq!(long, vec![("long".to_string(), MAX_FUNCTION_LINES + 2)]);
    assert_eq!(code, text.lines().count());
    let tests = format!("fn a() {{}}\n#[cfg(test)]\nmod tests {{\nfn long() {{\n{body}}}\n}}\n");
    assert_eq!(
        long_functions(&tests),
        (Vec::new(), 1),
        "test modules do not count"
    );
}
