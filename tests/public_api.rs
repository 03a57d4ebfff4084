//! The public API, one line per item users can name (with every feature on), against the list
//! checked in at `tests/public-api.txt`: a change to it fails here until the list is updated on
//! purpose with `MEMO_BLESS=1 cargo test --all-features --test public_api`, and the diff reviewed.
//!
//! The list is read from rustdoc's JSON output, which only the nightly toolchain writes; the
//! items re-exported from memo-runtime are followed into its own JSON.
#![cfg(all(
    feature = "disk",
    feature = "redis",
    feature = "metrics",
    feature = "switch",
    feature = "tracing",
    feature = "test-util"
))]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One crate's rustdoc JSON.
struct Doc {
    json: Value,
}

impl Doc {
    /// Runs `cargo +nightly rustdoc` for `package` and reads what it wrote.
    fn build(package: &str, lib: &str) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = root.join("target").join("public-api");
        let status = Command::new("cargo")
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTDOCFLAGS")
            .args([
                "+nightly",
                "rustdoc",
                "--quiet",
                "--lib",
                "--all-features",
                "-p",
            ])
            .arg(package)
            .args(["--", "-Zunstable-options", "--output-format", "json"])
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "`cargo +nightly rustdoc -p {package}` failed: the public API list needs the nightly toolchain"
        );
        let file: PathBuf = target.join("doc").join(format!("{lib}.json"));
        let text = std::fs::read_to_string(&file).expect("rustdoc wrote its JSON");
        Self {
            json: serde_json::from_str(&text).expect("rustdoc's JSON parses"),
        }
    }

    fn item(&self, id: &Value) -> &Value {
        let key = match id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        &self.json["index"][key]
    }

    fn root(&self) -> &Value {
        self.item(&self.json["root"])
    }
}

/// The item kind (`"struct"`, `"function"`, …) and its body.
fn inner(item: &Value) -> (&str, &Value) {
    item["inner"]
        .as_object()
        .and_then(|inner| inner.iter().next())
        .map_or(("?", &Value::Null), |(kind, body)| (kind.as_str(), body))
}

/// The lines of the public API, sorted.
struct Api<'a> {
    runtime: &'a Doc,
    lines: BTreeSet<String>,
}

impl Api<'_> {
    /// An item of memo-runtime's JSON, reached by the public path `path`.
    fn item(&mut self, doc: &Doc, item: &Value, path: &str) {
        if item.is_null() || item["visibility"] != "public" && !item["name"].is_null() {
            return;
        }
        let name = item["name"].as_str().unwrap_or("");
        let (kind, body) = inner(item);
        match kind {
            "module" => {
                self.lines.insert(format!("mod {path}"));
                for id in body["items"].as_array().into_iter().flatten() {
                    let child = doc.item(id);
                    if inner(child).0 == "use" {
                        self.reexport(doc, child, path);
                    } else if let Some(child_name) = child["name"].as_str() {
                        self.item(doc, child, &format!("{path}::{child_name}"));
                    }
                }
            }
            "use" => self.reexport(doc, item, path.rsplit_once("::").map_or("", |(p, _)| p)),
            "struct" => {
                self.lines
                    .insert(format!("struct {path}{}", generics(&body["generics"])));
                let fields = &body["kind"]["plain"]["fields"];
                for id in fields.as_array().into_iter().flatten() {
                    let field = doc.item(id);
                    if field["visibility"] == "public" {
                        let field_name = field["name"].as_str().unwrap_or("?");
                        let ty = ty(&field["inner"]["struct_field"]);
                        self.lines
                            .insert(format!("field {path}.{field_name}: {ty}"));
                    }
                }
                self.impls(doc, body, path);
            }
            "enum" => {
                self.lines
                    .insert(format!("enum {path}{}", generics(&body["generics"])));
                for id in body["variants"].as_array().into_iter().flatten() {
                    let variant = doc.item(id);
                    let variant_name = variant["name"].as_str().unwrap_or("?");
                    let shape = variant_shape(doc, variant);
                    self.lines
                        .insert(format!("variant {path}::{variant_name}{shape}"));
                }
                self.impls(doc, body, path);
            }
            "trait" => {
                self.lines
                    .insert(format!("trait {path}{}", generics(&body["generics"])));
                for id in body["items"].as_array().into_iter().flatten() {
                    let member = doc.item(id);
                    let member_name = member["name"].as_str().unwrap_or("?");
                    self.member(member, &format!("{path}::{member_name}"));
                }
            }
            "function" => {
                self.lines.insert(format!("fn {path}{}", signature(body)));
            }
            "constant" => {
                self.lines
                    .insert(format!("const {path}: {}", ty(&body["type"])));
            }
            "static" => {
                self.lines
                    .insert(format!("static {path}: {}", ty(&body["type"])));
            }
            "type_alias" => {
                self.lines.insert(format!(
                    "type {path}{} = {}",
                    generics(&body["generics"]),
                    ty(&body["type"])
                ));
            }
            "proc_macro" | "macro" => {
                self.lines.insert(format!("macro {path}"));
            }
            other => {
                self.lines.insert(format!("{other} {path} ({name})"));
            }
        }
    }

    /// `pub use source as name`: the item it names, at `parent::name`.
    fn reexport(&mut self, doc: &Doc, item: &Value, parent: &str) {
        let body = &item["inner"]["use"];
        let name = body["name"].as_str().unwrap_or("?");
        let path = format!("{parent}::{name}");
        let source = body["source"].as_str().unwrap_or("");
        let local = doc.item(&body["id"]);
        if !local.is_null() && local["crate_id"] == 0 {
            self.item(doc, local, &path);
        } else if let Some(rest) = source.strip_prefix("memo_runtime::") {
            let runtime = self.runtime;
            match find(runtime, runtime.root(), rest) {
                Some(found) => self.item(runtime, found, &path),
                None => {
                    self.lines.insert(format!("unresolved {path} = {source}"));
                }
            }
        } else if source.starts_with("memo_macros::") {
            self.lines.insert(format!("macro {path}"));
        } else {
            self.lines.insert(format!("use {path} = {source}"));
        }
    }

    /// The methods and trait implementations of a struct or enum.
    fn impls(&mut self, doc: &Doc, body: &Value, path: &str) {
        for id in body["impls"].as_array().into_iter().flatten() {
            let (_, imp) = inner(doc.item(id));
            // Auto traits, blanket impls and derive's marker are not promises of the API.
            let marker = imp["trait"]["path"].as_str() == Some("StructuralPartialEq");
            if imp["is_synthetic"] == true || !imp["blanket_impl"].is_null() || marker {
                continue;
            }
            if imp["trait"].is_null() {
                for id in imp["items"].as_array().into_iter().flatten() {
                    let member = doc.item(id);
                    if member["visibility"] == "public" {
                        let member_name = member["name"].as_str().unwrap_or("?");
                        self.member(member, &format!("{path}::{member_name}"));
                    }
                }
            } else {
                self.lines.insert(format!(
                    "impl {}{} for {path}",
                    imp["trait"]["path"].as_str().unwrap_or("?"),
                    args(&imp["trait"]["args"])
                ));
            }
        }
    }

    /// A method, associated type or constant.
    fn member(&mut self, member: &Value, path: &str) {
        let (kind, body) = inner(member);
        let line = match kind {
            "function" => format!("fn {path}{}", signature(body)),
            "assoc_type" => format!("type {path}"),
            "assoc_const" => format!("const {path}: {}", ty(&body["type"])),
            other => format!("{other} {path}"),
        };
        self.lines.insert(line);
    }
}

/// `(u64, String)`, ` { a: u64 }` or nothing: the fields of an enum variant.
fn variant_shape(doc: &Doc, variant: &Value) -> String {
    match &variant["inner"]["variant"]["kind"] {
        Value::Object(map) if map.contains_key("tuple") => {
            let fields: Vec<String> = map["tuple"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|id| ty(&doc.item(id)["inner"]["struct_field"]))
                .collect();
            format!("({})", fields.join(", "))
        }
        Value::Object(map) if map.contains_key("struct") => {
            let fields: Vec<String> = map["struct"]["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|id| {
                    let field = doc.item(id);
                    format!(
                        "{}: {}",
                        field["name"].as_str().unwrap_or("?"),
                        ty(&field["inner"]["struct_field"])
                    )
                })
                .collect();
            format!(" {{ {} }}", fields.join(", "))
        }
        _ => String::new(),
    }
}

/// The item at `rest` (`"store::MemoryStore"`) below `module`, through modules and re-exports.
fn find<'d>(doc: &'d Doc, module: &'d Value, rest: &str) -> Option<&'d Value> {
    let (first, tail) = rest
        .split_once("::")
        .map_or((rest, None), |(f, t)| (f, Some(t)));
    for id in inner(module).1["items"].as_array()? {
        let mut child = doc.item(id);
        let child_name = if inner(child).0 == "use" {
            let name = child["inner"]["use"]["name"].as_str();
            child = doc.item(&child["inner"]["use"]["id"]);
            name
        } else {
            child["name"].as_str()
        };
        if child_name == Some(first) && !child.is_null() {
            return match tail {
                None => Some(child),
                Some(tail) => find(doc, child, tail),
            };
        }
    }
    None
}

/// `<K, V: Clone> where …`, or nothing.
fn generics(generics: &Value) -> String {
    let (params, predicates) = generics_split(generics);
    params + &predicates
}

/// `<K, V: Clone>` and ` where …`, each possibly empty.
fn generics_split(generics: &Value) -> (String, String) {
    let params: Vec<String> = generics["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|param| param["kind"]["type"]["is_synthetic"] != true)
        .map(|param| {
            let name = param["name"].as_str().unwrap_or("?").to_string();
            let bounds = bounds(&param["kind"]["type"]["bounds"]);
            if bounds.is_empty() {
                name
            } else {
                format!("{name}: {bounds}")
            }
        })
        .collect();
    let predicates: Vec<String> = generics["where_predicates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|predicate| {
            let bound = &predicate["bound_predicate"];
            (!bound.is_null())
                .then(|| format!("{}: {}", ty(&bound["type"]), bounds(&bound["bounds"])))
        })
        .collect();
    let params = if params.is_empty() {
        String::new()
    } else {
        format!("<{}>", params.join(", "))
    };
    let predicates = if predicates.is_empty() {
        String::new()
    } else {
        format!(" where {}", predicates.join(", "))
    };
    (params, predicates)
}

fn bounds(bounds: &Value) -> String {
    let parts: Vec<String> = bounds
        .as_array()
        .into_iter()
        .flatten()
        .map(|bound| {
            let trait_bound = &bound["trait_bound"];
            if trait_bound.is_null() {
                bound["outlives"].as_str().unwrap_or("?").to_string()
            } else {
                let modifier = if trait_bound["modifier"] == "maybe" {
                    "?"
                } else {
                    ""
                };
                format!(
                    "{modifier}{}{}",
                    trait_bound["trait"]["path"].as_str().unwrap_or("?"),
                    args(&trait_bound["trait"]["args"])
                )
            }
        })
        .collect();
    parts.join(" + ")
}

/// `<T, Key = K>` or `(A) -> B`, or nothing.
fn args(args: &Value) -> String {
    if let Some(angle) = args.get("angle_bracketed") {
        let mut parts: Vec<String> = angle["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|arg| {
                if let Some(t) = arg.get("type") {
                    ty(t)
                } else if let Some(lifetime) = arg.get("lifetime") {
                    lifetime.as_str().unwrap_or("'_").to_string()
                } else {
                    "_".to_string()
                }
            })
            .collect();
        for constraint in angle["constraints"].as_array().into_iter().flatten() {
            let name = constraint["name"].as_str().unwrap_or("?");
            let equality = &constraint["binding"]["equality"]["type"];
            if equality.is_null() {
                parts.push(format!(
                    "{name}: {}",
                    bounds(&constraint["binding"]["constraint"])
                ));
            } else {
                parts.push(format!("{name} = {}", ty(equality)));
            }
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("<{}>", parts.join(", "))
        }
    } else if let Some(parenthesized) = args.get("parenthesized") {
        let inputs: Vec<String> = parenthesized["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ty)
            .collect();
        let output = &parenthesized["output"];
        if output.is_null() {
            format!("({})", inputs.join(", "))
        } else {
            format!("({}) -> {}", inputs.join(", "), ty(output))
        }
    } else {
        String::new()
    }
}

/// A type, written as in Rust source.
fn ty(ty: &Value) -> String {
    let Some((kind, body)) = ty.as_object().and_then(|map| map.iter().next()) else {
        return ty.as_str().unwrap_or("_").to_string();
    };
    match kind.as_str() {
        "resolved_path" => format!(
            "{}{}",
            body["path"].as_str().unwrap_or("?"),
            args(&body["args"])
        ),
        "generic" | "primitive" => body.as_str().unwrap_or("?").to_string(),
        "borrowed_ref" => {
            let lifetime = body["lifetime"]
                .as_str()
                .map_or(String::new(), |l| format!("{l} "));
            let mutable = if body["is_mutable"] == true {
                "mut "
            } else {
                ""
            };
            format!("&{lifetime}{mutable}{}", self::ty(&body["type"]))
        }
        "raw_pointer" => {
            let mutable = if body["is_mutable"] == true {
                "mut"
            } else {
                "const"
            };
            format!("*{mutable} {}", self::ty(&body["type"]))
        }
        "tuple" => {
            let parts: Vec<String> = body
                .as_array()
                .into_iter()
                .flatten()
                .map(self::ty)
                .collect();
            format!("({})", parts.join(", "))
        }
        "slice" => format!("[{}]", self::ty(body)),
        "array" => format!(
            "[{}; {}]",
            self::ty(&body["type"]),
            body["len"].as_str().unwrap_or("?")
        ),
        "impl_trait" => format!("impl {}", bounds(body)),
        "dyn_trait" => {
            let traits: Vec<String> = body["traits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| {
                    format!(
                        "{}{}",
                        t["trait"]["path"].as_str().unwrap_or("?"),
                        args(&t["trait"]["args"])
                    )
                })
                .collect();
            format!("dyn {}", traits.join(" + "))
        }
        "qualified_path" => {
            let self_type = self::ty(&body["self_type"]);
            let name = body["name"].as_str().unwrap_or("?");
            match body["trait"]["path"]
                .as_str()
                .filter(|path| !path.is_empty())
            {
                Some(trait_path) => format!("<{self_type} as {trait_path}>::{name}"),
                None => format!("{self_type}::{name}"),
            }
        }
        "function_pointer" => format!("fn{}", signature_of(&body["sig"])),
        other => other.to_string(),
    }
}

/// `<L>(&self, key: L) -> V where …`, then ` (async)` or ` (const)`.
fn signature(function: &Value) -> String {
    let header = &function["header"];
    let prefix = match (header["is_async"] == true, header["is_const"] == true) {
        (true, _) => " (async)",
        (_, true) => " (const)",
        _ => "",
    };
    let (params, predicates) = generics_split(&function["generics"]);
    format!(
        "{params}{}{predicates}{prefix}",
        signature_of(&function["sig"])
    )
}

fn signature_of(sig: &Value) -> String {
    let inputs: Vec<String> = sig["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|input| {
            let name = input[0].as_str().unwrap_or("_");
            let t = ty(&input[1]);
            match (name, t.as_str()) {
                ("self", "Self") => "self".to_string(),
                ("self", "&Self") => "&self".to_string(),
                ("self", "&mut Self") => "&mut self".to_string(),
                _ => format!("{name}: {t}"),
            }
        })
        .collect();
    let output = &sig["output"];
    if output.is_null() {
        format!("({})", inputs.join(", "))
    } else {
        format!("({}) -> {}", inputs.join(", "), ty(output))
    }
}

#[test]
fn the_public_api_is_the_one_checked_in() {
    let facade = Doc::build("memo-kit", "memo");
    let runtime = Doc::build("memo-runtime", "memo_runtime");
    let mut api = Api {
        runtime: &runtime,
        lines: BTreeSet::new(),
    };
    api.item(&facade, facade.root(), "memo");
    let listed = api.lines.iter().fold(String::new(), |mut listed, line| {
        listed.push_str(line);
        listed.push('\n');
        listed
    });
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/public-api.txt");
    if std::env::var_os("MEMO_BLESS").is_some() {
        std::fs::write(&file, &listed).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&file).unwrap_or_default();
    if listed != expected {
        let old: BTreeSet<&str> = expected.lines().collect();
        let new: BTreeSet<&str> = listed.lines().collect();
        let removed: Vec<&&str> = old.difference(&new).collect();
        let added: Vec<&&str> = new.difference(&old).collect();
        panic!(
            "the public API changed; if on purpose, run `MEMO_BLESS=1 cargo test --all-features \
             --test public_api` and review the diff of tests/public-api.txt\nremoved: {removed:#?}\nadded: {added:#?}"
        );
    }
}
