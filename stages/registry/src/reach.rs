//! Which source files of the stages crate a built-in stage can reach, found by
//! walking the crate's module graph from the stage's entry module.
//!
//! A file is reached when a reached file names something in it: a path
//! (`crate::midi::Score`, `super::grid`, a child module, a name brought in by
//! `use`), in code or inside a macro's tokens. A file is also reached when it
//! holds an `impl` whose header names a type or trait of a reached file,
//! because a method runs without its file ever being named. The crate root and
//! the `amt-stage` binary dispatch to every stage; their references to *other*
//! stages' entry modules are not followed.
//!
//! Paths count wherever they are written: in code, in `use` (also inside
//! functions), inside macro tokens, in attribute arguments and in string
//! literals that spell a path (`#[serde(default = "crate::x::f")]`). An `impl`
//! is found through the names its header uses, glob imports and `type`
//! aliases included.
//!
//! Anything the walker cannot follow is an error when a stage reaches it:
//! `#[path]`, `include!` and `include_str!`/`include_bytes!`, `env!` and
//! `option_env!` (values baked in at build time), `#[macro_use]` and
//! `#[macro_export]` (macros used far from where they are written), a module
//! file it cannot find, a file it cannot parse. So a stage's file list is
//! complete by construction. Over-approximation is allowed: a name that might
//! mean a module is taken to mean it.
//!
//! Compiled into `build.rs` (which derives the code versions) and into this
//! crate's tests (which check the result against the real sources).
//!
//! One file of about 550 lines of code (670 with comments and blank lines): the module
//! graph (`Graph`: loading, resolving paths, `use` trees and globs, the walk)
//! and the syntax visitor that collects each file's references (`Collector`)
//! are two halves of one resolution, sharing its private `Module` and `Ref`
//! types; and `build.rs` includes the file by `#[path]`, so it must stand
//! alone.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};

use syn::visit::{self, Visit};

/// A module's path, its first element naming the crate root: `crate` for the
/// library, `bin:NAME` for a binary (`["crate", "tokenizer", "grid"]`).
pub type ModPath = Vec<String>;

/// The walker met something it cannot follow.
#[derive(Debug)]
pub struct ReachError(pub String);

impl fmt::Display for ReachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path as written, with the module it was written in.
#[derive(Clone, Debug)]
struct Ref {
    scope: ModPath,
    segments: Vec<String>,
    /// Written with a leading `::` (an external crate).
    global: bool,
    /// Written in a `use`, where a lone name can be a module.
    in_use: bool,
}

/// Where a path leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Module(ModPath),
    Extern(String),
}

#[derive(Default)]
struct Module {
    /// The file that holds it (relative to the crate directory).
    file: PathBuf,
    children: BTreeSet<String>,
    /// Names brought in by `use` (anywhere in the module, functions
    /// included), and every path each stands for.
    imports: BTreeMap<String, Vec<Ref>>,
    /// `use …::*` imports.
    globs: Vec<Ref>,
    /// `type Name = …;` aliases and the paths in the aliased type.
    aliases: BTreeMap<String, Vec<Ref>>,
}

#[derive(Default)]
struct FileRefs {
    refs: Vec<Ref>,
    /// Paths in `impl` headers (the trait and the self type).
    impl_refs: Vec<Ref>,
    /// What the walker cannot follow, reported if a stage reaches the file.
    unfollowable: Vec<String>,
}

/// The module graph of a crate (its library and one or more binaries).
pub struct Graph {
    modules: BTreeMap<ModPath, Module>,
    files: BTreeMap<PathBuf, FileRefs>,
    /// The crate roots (library and binaries): part of every stage.
    roots: BTreeSet<PathBuf>,
    /// The binaries: they dispatch to every stage, so their references to
    /// other stages' modules are not followed.
    dispatchers: BTreeSet<PathBuf>,
    /// How binaries name the library (`amt_stages`).
    lib_name: String,
}

/// What a stage reaches.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// Source files, relative to the crate directory, sorted.
    pub files: BTreeSet<PathBuf>,
    /// External crates named by those files (`tch`, `std`, …).
    pub externs: BTreeSet<String>,
}

impl Graph {
    /// Loads the crate in `dir`: the library root `lib` and the binaries
    /// `bins` (paths relative to `dir`); binaries call the library `lib_name`.
    pub fn load(dir: &Path, lib: &str, bins: &[&str], lib_name: &str) -> Result<Self, ReachError> {
        let mut g = Graph {
            modules: BTreeMap::new(),
            files: BTreeMap::new(),
            roots: BTreeSet::new(),
            dispatchers: bins.iter().map(PathBuf::from).collect(),
            lib_name: lib_name.to_owned(),
        };
        let mut pending = VecDeque::new();
        let root_dir = |f: &str| Path::new(f).parent().map(Path::to_owned).unwrap_or_default();
        pending.push_back((vec!["crate".to_owned()], PathBuf::from(lib), root_dir(lib)));
        for bin in bins {
            let stem = Path::new(bin)
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| ReachError(format!("{bin}: not a file name")))?;
            // A binary's `mod x;` would live beside it; ours declare none.
            pending.push_back((vec![format!("bin:{stem}")], PathBuf::from(bin), root_dir(bin)));
        }
        g.roots = pending.iter().map(|(_, f, _)| f.clone()).collect();
        while let Some((key, file, child_dir)) = pending.pop_front() {
            let text = std::fs::read_to_string(dir.join(&file))
                .map_err(|e| ReachError(format!("{}: {e}", file.display())))?;
            let ast = syn::parse_file(&text)
                .map_err(|e| ReachError(format!("{}: cannot parse: {e}", file.display())))?;
            let mut c = Collector {
                graph: &mut g,
                file: file.clone(),
                scope: key.clone(),
                dirs: vec![child_dir],
                refs: FileRefs::default(),
                in_impl_header: false,
                alias: None,
                pending: Vec::new(),
                error: None,
            };
            c.graph.modules.entry(key).or_default().file = file.clone();
            c.visit_file(&ast);
            if let Some(e) = c.error {
                return Err(e);
            }
            let (refs, found) = (c.refs, c.pending);
            for (child, name) in found {
                let parent_dir: PathBuf = child.1.clone();
                let flat = parent_dir.join(format!("{name}.rs"));
                let nested = parent_dir.join(&name).join("mod.rs");
                let (file_rel, dir_rel) = if dir.join(&flat).is_file() {
                    (flat, parent_dir.join(&name))
                } else if dir.join(&nested).is_file() {
                    (nested, parent_dir.join(&name))
                } else {
                    return Err(ReachError(format!(
                        "{}: module `{name}` has no file ({} or {})",
                        file.display(),
                        flat.display(),
                        nested.display()
                    )));
                };
                pending.push_back((child.0, file_rel, dir_rel));
            }
            g.files.insert(file, refs);
        }
        Ok(g)
    }

    /// The file that holds a library module (`["tokenizer", "grid"]`).
    pub fn module_file(&self, path: &[&str]) -> Option<&Path> {
        let mut key = vec!["crate".to_owned()];
        key.extend(path.iter().map(|s| s.to_string()));
        self.modules.get(&key).map(|m| m.file.as_path())
    }

    fn parent(path: &[String]) -> Option<ModPath> {
        (path.len() > 1).then(|| path[..path.len() - 1].to_vec())
    }

    /// Follows `segments` down from `base` as far as they name modules.
    fn walk(&self, mut cur: ModPath, segments: &[String]) -> ModPath {
        for s in segments {
            match s.as_str() {
                "self" => {}
                "super" => cur = Self::parent(&cur).unwrap_or(cur),
                _ if self.modules.get(&cur).is_some_and(|m| m.children.contains(s)) => {
                    cur.push(s.clone())
                }
                _ => break,
            }
        }
        cur
    }

    /// Everything a path may lead to.
    fn resolve(&self, r: &Ref, depth: usize, out: &mut BTreeSet<Target>) {
        let Some(first) = r.segments.first() else {
            return;
        };
        if r.global {
            out.insert(Target::Extern(first.clone()));
            return;
        }
        let rest = &r.segments[1..];
        match first.as_str() {
            "crate" => {
                out.insert(Target::Module(self.walk(r.scope[..1].to_vec(), rest)));
                return;
            }
            "self" | "super" => {
                out.insert(Target::Module(self.walk(r.scope.clone(), &r.segments)));
                return;
            }
            name if name == self.lib_name => {
                out.insert(Target::Module(self.walk(vec!["crate".into()], rest)));
                return;
            }
            _ => {}
        }
        // A bare name: a child module of this module or of an ancestor (names
        // an ancestor declares are visible through `use super::*`), or a name
        // that a `use` in scope brought in; otherwise another crate or a local item.
        // Outside `use`, a lone name is a value or a type, never a module.
        let may_be_module = r.segments.len() > 1 || r.in_use;
        let mut found = false;
        let mut scope = Some(r.scope.clone());
        while let Some(s) = scope {
            let m = self.modules.get(&s);
            if may_be_module && m.is_some_and(|m| m.children.contains(first)) {
                out.insert(Target::Module(self.walk(s.clone(), &r.segments)));
                found = true;
            }
            if let Some(imports) = m.and_then(|m| m.imports.get(first))
                && depth < 8
            {
                for import in imports {
                    let mut full = import.clone();
                    full.segments.extend(rest.iter().cloned());
                    self.resolve(&full, depth + 1, out);
                }
                found = true;
            }
            scope = Self::parent(&s);
        }
        if !found {
            out.insert(Target::Extern(first.clone()));
        }
    }

    /// Everything an `impl` header's path may name: as [`Graph::resolve`],
    /// plus a bare name brought in by a glob import (`use super::*`), plus
    /// what a `type` alias of that name stands for.
    fn resolve_impl(&self, r: &Ref, out: &mut BTreeSet<Target>) {
        let mut direct = BTreeSet::new();
        self.resolve(r, 0, &mut direct);
        let Some(last) = r.segments.last() else {
            return;
        };
        let bare = r.segments.len() == 1;
        let mut scope = Some(r.scope.clone());
        while let Some(s) = scope {
            if let Some(m) = self.modules.get(&s) {
                if bare {
                    for g in &m.globs {
                        self.resolve(g, 0, out);
                    }
                }
                for aliased in m.aliases.get(last).into_iter().flatten() {
                    self.resolve(aliased, 0, out);
                }
            }
            scope = Self::parent(&s);
        }
        for t in &direct {
            if let Target::Module(m) = t
                && let Some(aliased) = self.modules.get(m).and_then(|m| m.aliases.get(last))
            {
                for a in aliased {
                    self.resolve(a, 0, out);
                }
            }
        }
        out.extend(direct);
    }

    /// The files and external crates reachable from the library module
    /// `entry`, with the crate roots dispatching to it and not to `others`.
    pub fn reach(&self, entry: &str, others: &[&str]) -> Result<Reached, ReachError> {
        let entry_key = vec!["crate".to_owned(), entry.to_owned()];
        let entry_file = self
            .modules
            .get(&entry_key)
            .map(|m| m.file.clone())
            .ok_or_else(|| ReachError(format!("no module `{entry}` in the crate root")))?;
        let other_keys: Vec<ModPath> = others
            .iter()
            .filter(|o| **o != entry)
            .map(|o| vec!["crate".to_owned(), o.to_string()])
            .collect();

        // Reverse edges from `impl` headers: reaching a type's file reaches its impls.
        let mut impls: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
        for (file, refs) in &self.files {
            for r in &refs.impl_refs {
                let mut targets = BTreeSet::new();
                self.resolve_impl(r, &mut targets);
                for t in targets {
                    if let Target::Module(m) = t
                        && let Some(module) = self.modules.get(&m)
                    {
                        impls
                            .entry(module.file.clone())
                            .or_default()
                            .insert(file.clone());
                    }
                }
            }
        }

        let mut out = Reached::default();
        let mut queue: VecDeque<PathBuf> = self.roots.iter().cloned().collect();
        queue.push_back(entry_file);
        while let Some(file) = queue.pop_front() {
            if !out.files.insert(file.clone()) {
                continue;
            }
            let dispatch = self.dispatchers.contains(&file);
            let refs = &self.files[&file];
            if let Some(what) = refs.unfollowable.first() {
                return Err(ReachError(format!("{}: {what}", file.display())));
            }
            for r in &refs.refs {
                let mut targets = BTreeSet::new();
                self.resolve(r, 0, &mut targets);
                for t in targets {
                    match t {
                        Target::Extern(name) => {
                            out.externs.insert(name);
                        }
                        Target::Module(m) => {
                            if dispatch && other_keys.iter().any(|k| m.starts_with(k)) {
                                continue;
                            }
                            if let Some(module) = self.modules.get(&m) {
                                queue.push_back(module.file.clone());
                            }
                        }
                    }
                }
            }
            for f in impls.get(&file).into_iter().flatten() {
                queue.push_back(f.clone());
            }
        }
        Ok(out)
    }
}

/// Walks one file, recording modules, imports and every path.
struct Collector<'g> {
    graph: &'g mut Graph,
    file: PathBuf,
    scope: ModPath,
    /// Where the current module's child module files live.
    dirs: Vec<PathBuf>,
    refs: FileRefs,
    in_impl_header: bool,
    /// The `type` alias being read, whose paths are recorded under its name.
    alias: Option<String>,
    /// File modules found: (their key, the directory to look in), name.
    pending: Vec<((ModPath, PathBuf), String)>,
    error: Option<ReachError>,
}

impl Collector<'_> {
    fn fail(&mut self, what: String) {
        if self.error.is_none() {
            self.error = Some(ReachError(format!("{}: {what}", self.file.display())));
        }
    }

    /// Notes something the walker cannot follow; it is an error for any
    /// stage that reaches this file.
    fn unfollowable(&mut self, what: String) {
        self.refs.unfollowable.push(what);
    }

    fn module(&mut self) -> &mut Module {
        self.graph.modules.entry(self.scope.clone()).or_default()
    }

    fn record(&mut self, segments: Vec<String>, global: bool, in_use: bool) {
        if segments.is_empty() {
            return;
        }
        let r = Ref {
            scope: self.scope.clone(),
            segments,
            global,
            in_use,
        };
        if self.in_impl_header {
            self.refs.impl_refs.push(r.clone());
        }
        if let Some(alias) = self.alias.clone() {
            self.module().aliases.entry(alias).or_default().push(r.clone());
        }
        self.refs.refs.push(r);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, global: bool, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, global, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.import(prefix, global, &n.ident, &n.ident),
            syn::UseTree::Rename(r) => self.import(prefix, global, &r.ident, &r.rename),
            syn::UseTree::Glob(_) => {
                let r = Ref {
                    scope: self.scope.clone(),
                    segments: prefix.clone(),
                    global,
                    in_use: true,
                };
                self.module().globs.push(r);
                self.record(prefix.clone(), global, true);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, global, t);
                }
            }
        }
    }

    fn import(&mut self, prefix: &[String], global: bool, ident: &syn::Ident, name: &syn::Ident) {
        let mut segments = prefix.to_vec();
        // `use a::b::{self}` imports `b` itself.
        if ident != "self" {
            segments.push(ident.to_string());
        }
        let alias = if ident == "self" {
            segments.last().cloned().unwrap_or_default()
        } else {
            name.to_string()
        };
        let r = Ref {
            scope: self.scope.clone(),
            segments: segments.clone(),
            global,
            in_use: true,
        };
        if alias != "_" {
            self.module().imports.entry(alias).or_default().push(r);
        }
        self.record(segments, global, true);
    }

    /// `a::b::c` sequences inside a macro's tokens.
    fn scan_tokens(&mut self, tokens: proc_macro2::TokenStream) {
        use proc_macro2::{Spacing, TokenTree};
        let mut path: Vec<String> = Vec::new();
        let mut global = false;
        // How many `:` of a `::` were just seen.
        let mut colons = 0;
        let mut tokens = tokens.into_iter().peekable();
        while let Some(tt) = tokens.next() {
            match tt {
                TokenTree::Ident(i) => {
                    if colons != 2 {
                        self.flush_tokens(&mut path, &mut global);
                    }
                    path.push(i.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' => {
                    if colons == 0 && p.spacing() == Spacing::Joint {
                        colons = 1;
                    } else if colons == 1 {
                        colons = 2;
                        global |= path.is_empty();
                    } else {
                        self.flush_tokens(&mut path, &mut global);
                        colons = 0;
                    }
                }
                TokenTree::Group(g) => {
                    self.flush_tokens(&mut path, &mut global);
                    colons = 0;
                    self.scan_tokens(g.stream());
                }
                TokenTree::Punct(p) if p.as_char() == '!' => {
                    // A macro called inside another's tokens: `include_str!(…)`.
                    if let [name] = path.as_slice() {
                        let args = match tokens.peek() {
                            Some(TokenTree::Group(g)) => Some(g.stream()),
                            _ => None,
                        };
                        self.check_macro(&name.clone(), args.as_ref());
                    }
                    self.flush_tokens(&mut path, &mut global);
                    colons = 0;
                }
                TokenTree::Literal(lit) => {
                    self.flush_tokens(&mut path, &mut global);
                    colons = 0;
                    self.string_path(&lit.to_string());
                }
                _ => {
                    self.flush_tokens(&mut path, &mut global);
                    colons = 0;
                }
            }
        }
        self.flush_tokens(&mut path, &mut global);
    }

    /// Paths spelled in a string literal (`"crate::x::f"`, as serde's and
    /// clap's attributes take them).
    fn string_path(&mut self, literal: &str) {
        let Some(inner) = literal.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
            return;
        };
        let segments: Vec<&str> = inner.split("::").collect();
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        };
        if segments.len() > 1 && segments.iter().all(|s| ident(s)) {
            self.record(segments.iter().map(|s| s.to_string()).collect(), false, false);
        }
    }

    /// Macros whose effect the walker cannot see. `env!("CARGO_PKG_…")` is
    /// fine: those values come from Cargo.toml, which every version covers.
    fn check_macro(&mut self, name: &str, args: Option<&proc_macro2::TokenStream>) {
        let first_arg = args
            .and_then(|a| a.clone().into_iter().next())
            .map(|t| t.to_string())
            .unwrap_or_default();
        match name {
            "include" | "include_str" | "include_bytes" => {
                self.unfollowable(format!("`{name}!` reads a file the code-version walker cannot follow"))
            }
            "env" | "option_env" if !first_arg.starts_with("\"CARGO_PKG_") => {
                self.unfollowable(format!(
                    "`{name}!({first_arg})` bakes a build-time variable into the code, which no code version covers"
                ))
            }
            _ => {}
        }
    }

    /// Records a path found in tokens; a lone identifier names nothing outside its file.
    fn flush_tokens(&mut self, path: &mut Vec<String>, global: &mut bool) {
        if path.len() > 1 || (*global && !path.is_empty()) {
            self.record(std::mem::take(path), *global, false);
        }
        path.clear();
        *global = false;
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.attrs.iter().any(|a| a.path().is_ident("path")) {
            self.fail(format!("`#[path]` on module `{}` cannot be followed", m.ident));
            return;
        }
        let name = m.ident.to_string();
        self.graph
            .modules
            .entry(self.scope.clone())
            .or_default()
            .children
            .insert(name.clone());
        let mut key = self.scope.clone();
        key.push(name.clone());
        let dir = self.dirs.last().cloned().unwrap_or_default();
        match &m.content {
            None => self.pending.push(((key, dir), name)),
            Some((_, items)) => {
                self.graph.modules.entry(key.clone()).or_default().file = self.file.clone();
                let saved = std::mem::replace(&mut self.scope, key);
                self.dirs.push(dir.join(&name));
                for attr in &m.attrs {
                    self.visit_attribute(attr);
                }
                for item in items {
                    self.visit_item(item);
                }
                self.dirs.pop();
                self.scope = saved;
            }
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), u.leading_colon.is_some(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(segments, p.leading_colon.is_some(), false);
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if let Some(last) = m.path.segments.last() {
            self.check_macro(&last.ident.to_string(), Some(&m.tokens));
        }
        self.visit_path(&m.path);
        self.scan_tokens(m.tokens.clone());
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        if a.path().is_ident("macro_use") || a.path().is_ident("macro_export") {
            self.unfollowable(format!(
                "`#[{}]` makes a macro usable far from its file, which the code-version walker cannot follow",
                a.path().segments.last().map(|s| s.ident.to_string()).unwrap_or_default()
            ));
        }
        use quote::ToTokens;
        self.scan_tokens(a.meta.to_token_stream());
    }

    fn visit_item_type(&mut self, t: &'ast syn::ItemType) {
        let saved = self.alias.replace(t.ident.to_string());
        syn::visit::visit_item_type(self, t);
        self.alias = saved;
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        for attr in &i.attrs {
            self.visit_attribute(attr);
        }
        self.visit_generics(&i.generics);
        self.in_impl_header = true;
        if let Some((_, path, _)) = &i.trait_ {
            self.visit_path(path);
        }
        self.visit_type(&i.self_ty);
        self.in_impl_header = false;
        for item in &i.items {
            self.visit_impl_item(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small crate on disk, one file per `(path, text)`.
    fn crate_of(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn reached(dir: &Path, entry: &str, others: &[&str]) -> Vec<String> {
        let g = Graph::load(dir, "src/lib.rs", &["src/bin/run.rs"], "demo").unwrap();
        g.reach(entry, others)
            .unwrap()
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    const LIB: &str = "pub mod a; pub mod b; pub mod util; pub mod shapes;";
    const BIN: &str =
        "fn main() { let _ = match 1 { 0 => demo::a::run, _ => demo::b::run }; }";

    #[test]
    fn follows_paths_uses_children_and_macros_but_not_other_stages() {
        let dir = crate_of(&[
            ("src/lib.rs", LIB),
            ("src/bin/run.rs", BIN),
            ("src/a/mod.rs", "mod inner; pub fn run() { inner::go() }"),
            ("src/a/inner.rs", "pub fn go() { println!(\"{}\", crate::util::x()) }"),
            ("src/b.rs", "use crate::util as u; pub fn run() { u::deep::y(); }"),
            ("src/util/mod.rs", "pub mod deep; pub fn x() -> u8 { 1 }"),
            ("src/util/deep.rs", "pub fn y() {}"),
            ("src/shapes.rs", "pub struct S;"),
        ]);
        assert_eq!(
            reached(dir.path(), "a", &["a", "b"]),
            ["src/a/inner.rs", "src/a/mod.rs", "src/bin/run.rs", "src/lib.rs", "src/util/mod.rs"]
        );
        // `u::deep` goes through the `use … as u` alias to util/deep.rs.
        assert_eq!(
            reached(dir.path(), "b", &["a", "b"]),
            ["src/b.rs", "src/bin/run.rs", "src/lib.rs", "src/util/deep.rs", "src/util/mod.rs"]
        );
    }

    #[test]
    fn a_re_export_at_the_crate_root_is_followed() {
        let dir = crate_of(&[
            ("src/lib.rs", "pub mod a; pub mod b; pub use b::helper;"),
            ("src/bin/run.rs", BIN),
            ("src/a.rs", "pub fn run() { crate::helper() }"),
            ("src/b.rs", "pub fn run() {} pub fn helper() {}"),
        ]);
        assert!(reached(dir.path(), "a", &["a", "b"]).contains(&"src/b.rs".to_owned()));
    }

    #[test]
    fn impls_through_globs_and_aliases_and_paths_in_strings_are_reached() {
        let dir = crate_of(&[
            ("src/lib.rs", "pub mod a; pub mod b; pub mod grid; pub mod util;"),
            ("src/bin/run.rs", BIN),
            ("src/a.rs", "pub fn run() { crate::grid::Grid.cells(); }"),
            ("src/b.rs", "#[derive(serde::Deserialize)] pub struct P { #[serde(default = \"crate::util::d\")] x: u8 } pub fn run() {}"),
            ("src/grid/mod.rs", "pub struct Grid; pub type G = Grid; mod imp; mod more;"),
            ("src/grid/imp.rs", "use super::*; impl Grid { pub fn cells(&self) {} }"),
            ("src/grid/more.rs", "impl super::G { pub fn rows(&self) {} }"),
            ("src/util.rs", "pub fn d() -> u8 { 1 }"),
        ]);
        let a = reached(dir.path(), "a", &["a", "b"]);
        assert!(a.contains(&"src/grid/imp.rs".to_owned()), "{a:?}");
        assert!(a.contains(&"src/grid/more.rs".to_owned()), "{a:?}");
        assert!(reached(dir.path(), "b", &["a", "b"]).contains(&"src/util.rs".to_owned()));
    }

    #[test]
    fn aliases_in_functions_do_not_hide_each_other() {
        let dir = crate_of(&[
            ("src/lib.rs", "pub mod a; pub mod b; pub mod x; pub mod y;"),
            ("src/bin/run.rs", BIN),
            ("src/a.rs", "pub fn run() { { use crate::x as m; m::f(); } { use crate::y as m; m::g(); } }"),
            ("src/b.rs", "pub fn run() {}"),
            ("src/x/mod.rs", "pub mod f;"),
            ("src/x/f.rs", ""),
            ("src/y/mod.rs", "pub mod g;"),
            ("src/y/g.rs", ""),
        ]);
        let a = reached(dir.path(), "a", &["a", "b"]);
        assert!(a.contains(&"src/x/f.rs".to_owned()) && a.contains(&"src/y/g.rs".to_owned()), "{a:?}");
    }

    #[test]
    fn an_impl_elsewhere_is_reached_with_its_type() {
        let dir = crate_of(&[
            ("src/lib.rs", LIB),
            ("src/bin/run.rs", BIN),
            ("src/a.rs", "pub fn run() { let s = crate::shapes::S; s.area(); }"),
            ("src/b.rs", "pub fn run() {}"),
            ("src/util.rs", "use crate::shapes::S; impl S { pub fn area(&self) -> f64 { 2.0 } }"),
            ("src/shapes.rs", "pub struct S;"),
        ]);
        assert!(reached(dir.path(), "a", &["a", "b"]).contains(&"src/util.rs".to_owned()));
        assert!(!reached(dir.path(), "b", &["a", "b"]).contains(&"src/util.rs".to_owned()));
    }

    #[test]
    fn siblings_through_use_super_glob_and_inline_modules() {
        let dir = crate_of(&[
            ("src/lib.rs", LIB),
            ("src/bin/run.rs", BIN),
            ("src/a/mod.rs", "mod one; mod two; pub fn run() { one::f() }"),
            ("src/a/one.rs", "use super::*; pub fn f() { two::g() }"),
            ("src/a/two.rs", "pub fn g() {}"),
            ("src/b.rs", "pub fn run() {} mod t { fn x() { super::super::shapes::S; } }"),
            ("src/util.rs", ""),
            ("src/shapes.rs", "pub struct S;"),
        ]);
        assert!(reached(dir.path(), "a", &["a", "b"]).contains(&"src/a/two.rs".to_owned()));
        assert!(reached(dir.path(), "b", &["a", "b"]).contains(&"src/shapes.rs".to_owned()));
    }

    #[test]
    fn what_cannot_be_followed_is_an_error() {
        let dir = crate_of(&[
            ("src/lib.rs", "#[path = \"x.rs\"] mod a;"),
            ("src/bin/run.rs", ""),
        ]);
        let e = Graph::load(dir.path(), "src/lib.rs", &["src/bin/run.rs"], "demo").err();
        assert!(e.unwrap().0.contains("#[path]"));
        // Reached by stage a, and only there: stage b does not care.
        for (code, says) in [
            ("const X: &str = include_str!(\"x.txt\");", "include_str!"),
            ("fn f() { println!(\"{}\", include_str!(\"x.txt\")); }", "include_str!"),
            ("const V: &str = env!(\"HOME\");", "env!(\"HOME\")"),
            ("#[macro_export] macro_rules! m { () => {} }", "macro_export"),
        ] {
            let dir = crate_of(&[
                ("src/lib.rs", "pub mod a; pub mod b;"),
                ("src/bin/run.rs", BIN),
                ("src/a.rs", &format!("pub fn run() {{}} {code}")),
                ("src/b.rs", "pub fn run() {}"),
            ]);
            let g = Graph::load(dir.path(), "src/lib.rs", &["src/bin/run.rs"], "demo").unwrap();
            let e = g.reach("a", &["a", "b"]).unwrap_err();
            assert!(e.0.contains(says), "{code}: {e}");
            assert!(g.reach("b", &["a", "b"]).is_ok());
        }
        let dir = crate_of(&[("src/lib.rs", "mod gone;"), ("src/bin/run.rs", "")]);
        let e = Graph::load(dir.path(), "src/lib.rs", &["src/bin/run.rs"], "demo").err();
        assert!(e.unwrap().0.contains("module `gone` has no file"));
    }

    #[test]
    fn externs_are_recorded() {
        let dir = crate_of(&[
            ("src/lib.rs", LIB),
            ("src/bin/run.rs", BIN),
            ("src/a.rs", "pub fn run() { let _ = tch::Device::Cpu; }"),
            ("src/b.rs", "pub fn run() {}"),
            ("src/util.rs", ""),
            ("src/shapes.rs", ""),
        ]);
        let g = Graph::load(dir.path(), "src/lib.rs", &["src/bin/run.rs"], "demo").unwrap();
        assert!(g.reach("a", &["a", "b"]).unwrap().externs.contains("tch"));
        assert!(!g.reach("b", &["a", "b"]).unwrap().externs.contains("tch"));
    }
}
