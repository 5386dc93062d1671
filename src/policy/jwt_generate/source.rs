//! Where a minted claim or header member comes from: a literal, one request value, or a
//! template; each converted to a declared type, with a default when absent.

use super::config::{ClaimConfig, ClaimFromConfig, HeaderConfig, ValueType};
use super::values::convert;
use crate::error::Errors;
use crate::expr::{Template, Var};
use crate::request::RequestView;
use serde_json::Value;

#[derive(Debug)]
pub(super) enum Input {
    Var(Var),
    Template(Template),
}

#[derive(Debug)]
pub(super) enum Source {
    Literal(Value),
    Request {
        input: Input,
        kind: ValueType,
        items: Option<ValueType>,
        default: Option<Value>,
    },
}

/// A claim name: fixed, or rendered per request.
#[derive(Debug)]
pub(super) enum Name {
    Fixed(String),
    Template(Template),
}

pub(super) fn toml_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Source {
    /// A template rendered as text (typ, cty, kid and string header members).
    pub(super) fn text(t: &str, path: &str, errs: &mut Errors) -> Option<Source> {
        Template::parse(t)
            .map_err(|e| errs.push(path, e))
            .ok()
            .map(|t| Source::Request {
                input: Input::Template(t),
                kind: ValueType::Auto,
                items: None,
                default: None,
            })
    }

    pub(super) fn claim(c: &ClaimConfig, path: &str, errs: &mut Errors) -> Option<Source> {
        match c {
            ClaimConfig::Literal(v) => Some(Source::Literal(toml_json(v))),
            ClaimConfig::From(f) => Source::request(f, path, errs),
        }
    }

    pub(super) fn header(c: &HeaderConfig, path: &str, errs: &mut Errors) -> Option<Source> {
        match c {
            HeaderConfig::Template(t) => Source::text(t, path, errs),
            HeaderConfig::From(f) => Source::request(f, path, errs),
            HeaderConfig::Literal(v) => Some(Source::Literal(toml_json(v))),
        }
    }

    fn request(c: &ClaimFromConfig, path: &str, errs: &mut Errors) -> Option<Source> {
        let ClaimFromConfig {
            from,
            template,
            kind,
            items,
            default,
        } = c;
        let input = match (from, template) {
            (Some(f), None) => Var::parse(f)
                .map_err(|e| errs.push(format!("{path}.from"), e))
                .ok()
                .map(Input::Var),
            (None, Some(t)) => Template::parse(t)
                .map_err(|e| errs.push(format!("{path}.template"), e))
                .ok()
                .map(Input::Template),
            _ => {
                errs.push(path, "exactly one of `from` and `template`");
                None
            }
        };
        if items.is_some() && *kind != ValueType::Array {
            errs.push(format!("{path}.items"), "only with type = \"array\"");
        }
        if matches!(items, Some(ValueType::Array | ValueType::Json)) {
            errs.push(
                format!("{path}.items"),
                "\"string\", \"number\", \"boolean\" or \"auto\"",
            );
        }
        Some(Source::Request {
            input: input?,
            kind: *kind,
            items: *items,
            default: default.as_ref().map(toml_json),
        })
    }

    /// The value for this request; None when absent (or not convertible) without a default.
    pub(super) fn resolve(&self, v: &RequestView<'_>) -> Option<Value> {
        let (input, kind, items, default) = match self {
            Source::Literal(x) => return Some(x.clone()),
            Source::Request {
                input,
                kind,
                items,
                default,
            } => (input, kind, items, default),
        };
        let raw = match input {
            Input::Var(var) => var.resolve_json(v),
            Input::Template(t) => t.render(v).map(Value::String),
        };
        raw.and_then(|x| convert(*kind, x))
            .and_then(|x| match (items, x) {
                (Some(it), Value::Array(a)) => a
                    .into_iter()
                    .map(|e| convert(*it, e))
                    .collect::<Option<Vec<_>>>()
                    .map(Value::Array),
                (_, x) => Some(x),
            })
            .or_else(|| default.clone())
    }

    pub(super) fn reads_body(&self) -> bool {
        match self {
            Source::Request {
                input: Input::Var(v),
                ..
            } => v.reads_body(),
            Source::Request {
                input: Input::Template(t),
                ..
            } => t.reads_body(),
            Source::Literal(_) => false,
        }
    }
}

impl Name {
    pub(super) fn parse(name: &str, path: &str, errs: &mut Errors) -> Option<Name> {
        if !name.contains("${") {
            return Some(Name::Fixed(name.to_string()));
        }
        Template::parse(name)
            .map_err(|e| errs.push(path, e))
            .ok()
            .map(Name::Template)
    }

    pub(super) fn reads_body(&self) -> bool {
        matches!(self, Name::Template(t) if t.reads_body())
    }
}
