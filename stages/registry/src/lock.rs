//! The part of Cargo.lock a crate depends on. Compiled into `build.rs` and
//! into this crate's tests.

/// The packages of Cargo.lock that `root` depends on, directly or not, each
/// as `name version source checksum`, sorted. A dependency added to another
/// workspace member (the engine's test tools) leaves this unchanged.
pub fn closure(lock: &str, root: &str) -> Vec<String> {
    let lock: toml::Table = lock.parse().expect("Cargo.lock is TOML");
    let packages = lock["package"].as_array().expect("Cargo.lock lists packages");
    let field = |p: &toml::Value, k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    // `name` or `name version` (or `name version (source)`) → the package.
    let find = |spec: &str| {
        let mut words = spec.split_whitespace();
        let (name, version) = (words.next().unwrap_or(""), words.next());
        packages
            .iter()
            .find(|p| field(p, "name") == name && version.is_none_or(|v| field(p, "version") == v))
            .unwrap_or_else(|| panic!("Cargo.lock names `{spec}` but does not list it"))
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![find(root)];
    while let Some(p) = todo.pop() {
        let id = format!(
            "{} {} {} {}",
            field(p, "name"),
            field(p, "version"),
            field(p, "source"),
            field(p, "checksum")
        );
        if !seen.insert(id) {
            continue;
        }
        for dep in p.get("dependencies").and_then(|d| d.as_array()).into_iter().flatten() {
            todo.push(find(dep.as_str().unwrap_or("")));
        }
    }
    seen.into_iter().collect()
}


#[cfg(test)]
mod tests {
    const LOCK: &str = r#"
version = 4
[[package]]
name = "app"
version = "0.1.0"
dependencies = ["lib", "testtool"]
[[package]]
name = "lib"
version = "0.1.0"
dependencies = ["rand 0.9.0"]
[[package]]
name = "rand"
version = "0.8.5"
source = "registry+x"
checksum = "aa"
[[package]]
name = "rand"
version = "0.9.0"
source = "registry+x"
checksum = "bb"
[[package]]
name = "testtool"
version = "1.0.0"
source = "registry+x"
checksum = "cc"
"#;

    #[test]
    fn the_closure_follows_dependencies_and_versions_only() {
        assert_eq!(
            super::closure(LOCK, "lib"),
            ["lib 0.1.0  ", "rand 0.9.0 registry+x bb"]
        );
        let app = super::closure(LOCK, "app");
        assert!(app.iter().any(|p| p.starts_with("testtool")), "{app:?}");
        assert!(!app.iter().any(|p| p.contains("0.8.5")), "{app:?}");
    }
}
