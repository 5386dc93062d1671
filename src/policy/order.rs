//! Dependency order with cycle detection, for names that refer to other names (`on_error`
//! handlers, policy groups): each name comes after the names it refers to.

use crate::error::Errors;
use std::collections::HashMap;

/// A reference from one name to another: the TOML path where it is written, and the target.
pub type Edge<'a> = (String, &'a str);

/// `names` in depth-first order, each after the names `edges` gives for it (only names for which
/// `known` holds are followed). A reference that closes a cycle is an error at its path,
/// `"{what}: a -> b -> a"`. Returns the order and the names on a cycle.
pub fn dependency_order<'a>(
    names: impl IntoIterator<Item = &'a str>,
    edges: impl Fn(&'a str) -> Vec<Edge<'a>>,
    known: impl Fn(&str) -> bool,
    what: &str,
    errs: &mut Errors,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let mut w = Walk {
        done: HashMap::new(),
        stack: Vec::new(),
        cyclic: Vec::new(),
        out: Vec::new(),
    };
    for n in names {
        w.visit(n, &edges, &known, what, errs);
    }
    (w.out, w.cyclic)
}

struct Walk<'a> {
    /// false: on the current path; true: placed.
    done: HashMap<&'a str, bool>,
    stack: Vec<&'a str>,
    cyclic: Vec<&'a str>,
    out: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    fn visit(
        &mut self,
        name: &'a str,
        edges: &impl Fn(&'a str) -> Vec<Edge<'a>>,
        known: &impl Fn(&str) -> bool,
        what: &str,
        errs: &mut Errors,
    ) {
        if self.done.contains_key(name) {
            return;
        }
        self.done.insert(name, false);
        self.stack.push(name);
        for (path, next) in edges(name) {
            match self.done.get(next) {
                Some(false) => {
                    let start = self.stack.iter().position(|s| *s == next).unwrap_or(0);
                    let ring = self.stack.get(start..).unwrap_or_default();
                    self.cyclic.extend_from_slice(ring);
                    errs.push(path, format!("{what}: {} -> {next}", ring.join(" -> ")));
                }
                Some(true) => {}
                None if known(next) => self.visit(next, edges, known, what, errs),
                None => {}
            }
        }
        self.stack.pop();
        self.done.insert(name, true);
        self.out.push(name);
    }
}
