//! The layer table of `src/lib.rs`, enforced: an import may only point to a module of the same
//! or a lower layer, and the top-level modules import each other without cycles.
//!
//! The test reads the sources (no dependency beyond std): every `crate::…` path outside comments
//! and string literals, grouped (`use crate::{a::b, c}`) or inline (`crate::x::y(…)`), and every
//! `super::…` path that climbs out of its top-level module, is mapped to the top-level module it
//! names. `#[cfg(test)]` code counts too: unit tests are compiled into the module they test, so a
//! test reaching up the table makes the lower module unbuildable and untestable without the
//! higher one, the coupling the table exists to prevent. Tests that need several layers live in
//! `tests/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of every top-level module of the library (and of the binary, `main`). A module
/// missing here fails the test: a new module must take its place in the table.
const LAYERS: &[(&str, u8)] = &[
    // L0 leaves: pure values, no runtime state.
    ("units", 0),
    ("error", 0),
    ("jose", 0),
    ("reply", 0),
    ("request", 0),
    ("metrics", 0),
    ("accesslog", 0),
    ("fingerprint", 0),
    // L1 contract: the operator's serde model.
    ("config", 1),
    // L2 blocks.
    ("expr", 2),
    ("router", 2),
    ("upstream", 2),
    ("front", 2),
    ("guard", 2),
    ("keys", 2),
    ("store", 2),
    ("cache", 2),
    // L3 services.
    ("identity", 3),
    ("token", 3),
    // L4 policies.
    ("policy", 4),
    // L5 composition.
    ("compile", 5),
    ("shared", 5),
    ("lint", 5),
    ("usage", 5),
    // L6 runtime.
    ("state", 6),
    ("reload", 6),
    ("proxy", 6),
    ("admin", 6),
    ("server", 6),
    ("main", 6),
    ("simulate", 6),
];

/// Imports that still break the rules (up the table, or closing a cycle), each with why it is
/// not fixed yet: `(file, imported module, reason)`. Both tests skip them. The list may only
/// shrink: an entry whose file no longer imports that module fails the test, so a fixed import
/// must leave the list.
#[rustfmt::skip]
const ALLOWED: &[(&str, &str, &str)] = &[
];

fn exempt(file: &str, module: &str) -> bool {
    ALLOWED.iter().any(|(f, m, _)| *f == file && *m == module)
}

/// One import found in a file: the top-level module it names and the path as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    module: String,
    path: String,
}

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|&(_, l)| l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The module path of a file relative to `src/`: `policy/jwt_verify/mod.rs` is
/// `[policy, jwt_verify]`, `main.rs` is `[main]`, `lib.rs` is `[]` (the crate root).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_string();
    }
    if parts.last().is_some_and(|l| l == "mod" || l == "lib") {
        parts.pop();
    }
    parts
}

/// The source with comments and the contents of string and char literals replaced by spaces
/// (newlines kept), so that only code is searched for paths.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let ident_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if (c == b'r' || c == b'b') && !ident_before && raw_string_start(b, i).is_some() {
            let (hashes, body) = raw_string_start(b, i).unwrap_or((0, i));
            for &x in &b[i..body] {
                blank(&mut out, x);
            }
            i = body;
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while i < b.len() && !b[i..].starts_with(&close) {
                blank(&mut out, b[i]);
                i += 1;
            }
            let end = (i + close.len()).min(b.len());
            out.extend(std::iter::repeat_n(b' ', end - i));
            i = end;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                let step = if b[i] == b'\\' { 2 } else { 1 };
                for &x in &b[i..(i + step).min(b.len())] {
                    blank(&mut out, x);
                }
                i += step;
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}', '"') or a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b.get(i + 3..)
                    .and_then(|r| r.iter().position(|&x| x == b'\''))
                    .map(|p| i + 3 + p)
            } else {
                let len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + len) == Some(&b'\'')).then_some(i + 1 + len)
            };
            match end {
                Some(end) => {
                    out.extend(std::iter::repeat_n(b' ', end + 1 - i));
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `r"`, `r#"`, `br"`…: the number of `#` and where the body starts.
fn raw_string_start(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if b[j] == b'b' {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&x| x == b'#').count();
    j += hashes;
    (b.get(j) == Some(&b'"')).then_some((hashes, j + 1))
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn ident(s: &[u8], i: usize) -> Option<(String, usize)> {
    let i = skip_ws(s, i);
    let len = s[i..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if len == 0 {
        return s
            .get(i)
            .filter(|&&c| c == b'*')
            .map(|_| ("*".to_string(), i + 1));
    }
    Some((
        String::from_utf8_lossy(&s[i..i + len]).into_owned(),
        i + len,
    ))
}

/// Parses the use tree that follows a `crate::` (at `i`): the paths it names, each from the
/// crate root, and where the tree ends.
fn use_tree(s: &[u8], i: usize, prefix: &str, out: &mut Vec<String>) -> usize {
    let i = skip_ws(s, i);
    if s.get(i) == Some(&b'{') {
        let mut i = i + 1;
        loop {
            i = skip_ws(s, i);
            match s.get(i) {
                None => return i,
                Some(b'}') => return i + 1,
                Some(b',') => i += 1,
                Some(_) => {
                    let next = use_tree(s, i, prefix, out);
                    if next == i {
                        // Not a path: leave the group as it is.
                        return i + 1;
                    }
                    i = next;
                }
            }
        }
    }
    let Some((seg, mut i)) = ident(s, i) else {
        return i;
    };
    let path = if prefix.is_empty() {
        seg
    } else {
        format!("{prefix}::{seg}")
    };
    let j = skip_ws(s, i);
    if s[j..].starts_with(b"::") {
        i = use_tree(s, j + 2, &path, out);
    } else {
        out.push(path);
    }
    i
}

/// Every path from the crate root that `code` (comments and literals already removed) names,
/// given the module path of its file.
fn crate_paths(code: &str, module: &[String]) -> Vec<String> {
    let s = code.as_bytes();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let at_word = i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_');
        let root = ["crate::", "tokengate::"]
            .into_iter()
            .find(|r| at_word && s[i..].starts_with(r.as_bytes()));
        if let Some(r) = root {
            let mut found = Vec::new();
            i = use_tree(s, i + r.len(), "", &mut found);
            paths.extend(found);
            continue;
        }
        if at_word && s[i..].starts_with(b"super::") {
            // A chain of `super::` that climbs to the crate root leaves the top-level module.
            let mut ups = 0;
            let mut j = i;
            while s[j..].starts_with(b"super::") {
                ups += 1;
                j = skip_ws(s, j + "super::".len());
            }
            if ups >= module.len() {
                let mut found = Vec::new();
                let end = use_tree(s, j, "", &mut found);
                paths.extend(found);
                i = end.max(j);
            } else {
                i = j;
            }
            continue;
        }
        i += 1;
    }
    paths
}

/// Every (file, import) of `src/`, with the importing file's top-level module.
fn imports() -> std::io::Result<Vec<(String, String, Import)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files)?;
    files.sort();
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|f| module_path(f.strip_prefix(&src).ok()?).first().cloned())
        .collect();
    let mut all = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap_or(&file).to_path_buf();
        let module = module_path(&rel);
        let Some(top) = module.first().cloned() else {
            // lib.rs declares the modules; it imports nothing across them.
            continue;
        };
        let text = std::fs::read_to_string(&file)?;
        let name = format!("src/{}", rel.to_string_lossy());
        for path in crate_paths(&strip(&text), &module) {
            let first = path.split("::").next().unwrap_or("").to_string();
            if first == top || first == "*" || first == "self" || first.is_empty() {
                continue;
            }
            // An item of the crate root (`crate::Snapshot`) is lib.rs's re-export of a module's
            // item; the module itself is checked where it is named.
            if !modules.contains(&first) {
                continue;
            }
            all.push((
                name.clone(),
                top.clone(),
                Import {
                    module: first,
                    path,
                },
            ));
        }
    }
    Ok(all)
}

#[test]
fn imports_point_to_the_same_or_a_lower_layer() {
    let mut violations = BTreeSet::new();
    let mut unknown = BTreeSet::new();
    let all = imports().unwrap();
    for (file, top, import) in all.iter().cloned() {
        let (Some(from), Some(to)) = (layer(&top), layer(&import.module)) else {
            for m in [&top, &import.module] {
                if layer(m).is_none() {
                    unknown.insert(m.clone());
                }
            }
            continue;
        };
        if to > from {
            violations.insert((file, import.module, import.path, from, to));
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from the layer table in tests/layers.rs: {unknown:?}"
    );
    let unexpected: Vec<String> = violations
        .iter()
        .filter(|(file, module, ..)| !exempt(file, module))
        .map(|(file, _, path, from, to)| format!("{file} (L{from}) imports crate::{path} (L{to})"))
        .collect();
    let stale: Vec<String> = ALLOWED
        .iter()
        .filter(|(f, m, _)| !all.iter().any(|(file, _, i)| file == f && i.module == *m))
        .map(|(f, m, _)| format!("{f} -> {m}"))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "imports pointing up the layer table: {unexpected:#?}\n\
         allow-list entries that no longer occur (remove them): {stale:#?}"
    );
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut via: BTreeMap<(String, String), String> = BTreeMap::new();
    for (file, top, import) in imports().unwrap() {
        if exempt(&file, &import.module) {
            continue;
        }
        via.entry((top.clone(), import.module.clone()))
            .or_insert_with(|| format!("{file}: crate::{}", import.path));
        graph.entry(top).or_default().insert(import.module);
    }
    // Depth-first search; a back edge closes a cycle.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(k) = stack.iter().position(|s| s == n) {
            let mut c = stack[k..].to_vec();
            c.push(n.to_string());
            cycles.push(c);
            return;
        }
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            visit(m, graph, stack, done, cycles);
        }
        stack.pop();
        done.insert(n.to_string());
    }
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        visit(n, &graph, &mut Vec::new(), &mut done, &mut cycles);
    }
    let described: Vec<String> = cycles
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .windows(2)
                .map(|w| via[&(w[0].clone(), w[1].clone())].clone())
                .collect();
            format!("{}\n    {}", c.join(" -> "), edges.join("\n    "))
        })
        .collect();
    assert!(
        described.is_empty(),
        "import cycles between top-level modules:\n  {}",
        described.join("\n  ")
    );
}

#[test]
fn the_scanner_sees_grouped_inline_and_climbing_paths_and_skips_comments() {
    let code = strip(
        "use crate::{a::b, c::{d, e::f}};\n\
         // use crate::commented;\n\
         /* crate::blocked */\n\
         let s = \"crate::quoted\"; let c = '\"'; let r = r#\"crate::raw\"#;\n\
         fn g<'a>() { crate::inline::call(); }\n\
         use super::super::up::Thing;\n",
    );
    let module = vec!["x".to_string(), "y".to_string()];
    assert_eq!(
        crate_paths(&code, &module),
        ["a::b", "c::d", "c::e::f", "inline::call", "up::Thing"]
    );
}
