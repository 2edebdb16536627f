//! The WIT reference (`docs/wit/caxton-agent-<version>.md`) is generated
//! from the WIT's own doc comments, one file per version in `wit/`. This
//! test fails when a reference is missing or stale, and rewrites them with
//! `CAXTON_BLESS=1 cargo test wit_reference`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use wit_parser::{Docs, Function, Resolve, Type, TypeDefKind, TypeId, WorldItem, WorldKey};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_wit_reference_in_docs_matches_the_wit() {
    let bless = std::env::var_os("CAXTON_BLESS").is_some();
    let mut versions: Vec<PathBuf> = std::fs::read_dir(repo().join("wit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    versions.sort();
    assert!(versions.len() >= 2, "wit/ holds every released version");
    for dir in versions {
        let (reference, version) = render(&dir);
        let path = repo().join(format!("docs/wit/caxton-agent-{version}.md"));
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &reference).unwrap();
            continue;
        }
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            written == reference,
            "{} is not what {} documents; regenerate it with `CAXTON_BLESS=1 cargo test wit_reference`",
            path.display(),
            dir.display()
        );
    }
}

/// The markdown reference of one WIT package directory, and its version.
fn render(dir: &Path) -> (String, String) {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(dir).unwrap();
    let name = &resolve.packages[package].name;
    let version = name
        .version
        .as_ref()
        .expect("a versioned package")
        .to_string();
    let mut out = String::new();
    writeln!(out, "# `{name}`: WIT reference\n").unwrap();
    writeln!(
        out,
        "<!-- Generated from wit/v{version}/ by tests/wit_reference.rs (CAXTON_BLESS=1 cargo test wit_reference); edit the WIT's doc comments, not this file. -->\n"
    )
    .unwrap();
    writeln!(
        out,
        "Plugins target this package; the plugin author's guide (`docs/plugins.md`) says how. A host refuses a component built against a version it does not support, naming it.\n"
    )
    .unwrap();

    writeln!(out, "## Worlds\n").unwrap();
    let pkg = &resolve.packages[package];
    for (world_name, world) in &pkg.worlds {
        let world = &resolve.worlds[*world];
        writeln!(out, "### world `{world_name}`\n").unwrap();
        paragraph(&mut out, &world.docs);
        for (label, items) in [("Imports", &world.imports), ("Exports", &world.exports)] {
            let mut lines = Vec::new();
            for (key, item) in items {
                match (key, item) {
                    (_, WorldItem::Interface { id, .. }) => {
                        let name = resolve.interfaces[*id].name.clone().unwrap_or_default();
                        lines.push(format!("- interface [`{name}`](#interface-{name})"));
                    }
                    (WorldKey::Name(name), WorldItem::Function(function)) => {
                        lines.push(format!(
                            "- `{name}: {}`{}",
                            signature(&resolve, function),
                            one_line(&function.docs)
                                .map(|d| format!(": {d}"))
                                .unwrap_or_default()
                        ));
                    }
                    // Types a world `use`s are documented with their interface.
                    _ => {}
                }
            }
            if !lines.is_empty() {
                writeln!(out, "{label}:\n\n{}\n", lines.join("\n")).unwrap();
            }
        }
    }

    writeln!(out, "## Interfaces\n").unwrap();
    for (interface_name, interface) in &pkg.interfaces {
        let interface = &resolve.interfaces[*interface];
        writeln!(out, "### interface `{interface_name}`\n").unwrap();
        paragraph(&mut out, &interface.docs);
        for (type_name, ty) in &interface.types {
            type_section(&mut out, &resolve, type_name, *ty);
        }
        for (function_name, function) in &interface.functions {
            writeln!(
                out,
                "#### `{function_name}: {}`\n",
                signature(&resolve, function)
            )
            .unwrap();
            paragraph(&mut out, &function.docs);
        }
    }
    (out.trim_end().to_owned() + "\n", version)
}

fn type_section(out: &mut String, resolve: &Resolve, name: &str, id: TypeId) {
    let def = &resolve.types[id];
    // A `use`d type is an alias of the defining interface's: skip it.
    if let (TypeDefKind::Type(Type::Id(other)), wit_parser::TypeOwner::Interface(owner)) =
        (&def.kind, def.owner)
        && resolve.types[*other].owner != wit_parser::TypeOwner::Interface(owner)
    {
        return;
    }
    let kind = match &def.kind {
        TypeDefKind::Record(_) => "record",
        TypeDefKind::Enum(_) => "enum",
        TypeDefKind::Variant(_) => "variant",
        TypeDefKind::Flags(_) => "flags",
        TypeDefKind::Resource => "resource",
        _ => "type",
    };
    writeln!(out, "#### {kind} `{name}`\n").unwrap();
    paragraph(out, &def.docs);
    match &def.kind {
        TypeDefKind::Record(record) => {
            writeln!(out, "| field | type | meaning |\n|---|---|---|").unwrap();
            for field in &record.fields {
                writeln!(
                    out,
                    "| `{}` | `{}` | {} |",
                    field.name,
                    type_name(resolve, &field.ty),
                    cell(&field.docs)
                )
                .unwrap();
            }
            out.push('\n');
        }
        TypeDefKind::Enum(e) => {
            writeln!(out, "| case | meaning |\n|---|---|").unwrap();
            for case in &e.cases {
                writeln!(out, "| `{}` | {} |", case.name, cell(&case.docs)).unwrap();
            }
            out.push('\n');
        }
        TypeDefKind::Variant(v) => {
            writeln!(out, "| case | payload | meaning |\n|---|---|---|").unwrap();
            for case in &v.cases {
                let payload = case
                    .ty
                    .as_ref()
                    .map(|t| format!("`{}`", type_name(resolve, t)))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "| `{}` | {payload} | {} |",
                    case.name,
                    cell(&case.docs)
                )
                .unwrap();
            }
            out.push('\n');
        }
        TypeDefKind::Flags(flags) => {
            writeln!(out, "| flag | meaning |\n|---|---|").unwrap();
            for flag in &flags.flags {
                writeln!(out, "| `{}` | {} |", flag.name, cell(&flag.docs)).unwrap();
            }
            out.push('\n');
        }
        TypeDefKind::Resource => {}
        other => {
            let _ = other;
            writeln!(
                out,
                "`type {name} = {}`\n",
                type_name(resolve, &Type::Id(id))
            )
            .unwrap();
        }
    }
}

fn signature(resolve: &Resolve, function: &Function) -> String {
    let params: Vec<String> = function
        .params
        .iter()
        .map(|p| format!("{}: {}", p.name, type_name(resolve, &p.ty)))
        .collect();
    match &function.result {
        Some(result) => format!(
            "func({}) -> {}",
            params.join(", "),
            type_name(resolve, result)
        ),
        None => format!("func({})", params.join(", ")),
    }
}

/// A type as WIT writes it.
fn type_name(resolve: &Resolve, ty: &Type) -> String {
    let id = match ty {
        Type::Bool => return "bool".into(),
        Type::U8 => return "u8".into(),
        Type::U16 => return "u16".into(),
        Type::U32 => return "u32".into(),
        Type::U64 => return "u64".into(),
        Type::S8 => return "s8".into(),
        Type::S16 => return "s16".into(),
        Type::S32 => return "s32".into(),
        Type::S64 => return "s64".into(),
        Type::F32 => return "f32".into(),
        Type::F64 => return "f64".into(),
        Type::Char => return "char".into(),
        Type::String => return "string".into(),
        Type::ErrorContext => return "error-context".into(),
        Type::Id(id) => *id,
    };
    let def = &resolve.types[id];
    if let Some(name) = &def.name {
        return name.clone();
    }
    let or_blank = |t: &Option<Type>| t.as_ref().map_or("_".to_owned(), |t| type_name(resolve, t));
    match &def.kind {
        TypeDefKind::Option(t) => format!("option<{}>", type_name(resolve, t)),
        TypeDefKind::List(t) => format!("list<{}>", type_name(resolve, t)),
        TypeDefKind::Result(r) => match (&r.ok, &r.err) {
            (None, None) => "result".into(),
            (ok, err) => format!("result<{}, {}>", or_blank(ok), or_blank(err)),
        },
        TypeDefKind::Tuple(t) => format!(
            "tuple<{}>",
            t.types
                .iter()
                .map(|t| type_name(resolve, t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeDefKind::Type(t) => type_name(resolve, t),
        other => other.as_str().to_owned(),
    }
}

fn paragraph(out: &mut String, docs: &Docs) {
    if let Some(text) = &docs.contents {
        writeln!(out, "{}\n", text.trim()).unwrap();
    }
}

fn one_line(docs: &Docs) -> Option<String> {
    docs.contents
        .as_ref()
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn cell(docs: &Docs) -> String {
    one_line(docs).unwrap_or_default().replace('|', "\\|")
}
