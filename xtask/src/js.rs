//! The JavaScript package: `wasm/pkg/`, the npm package `signoff`.
//!
//! `build` compiles `signoff-wasm` with feature `js`, runs wasm-bindgen for the
//! web (ES module, `init()` fetches the `.wasm`) and for Node (CommonJS that
//! loads the web build's `.wasm` at require time), writes the package files
//! from `wasm/package/`, and shrinks the package's one `.wasm` with
//! `wasm-opt`.
//! `test` runs the Rust tests of the binding and the Node test suites of
//! `wasm/tests/` against that package.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::{Result, cargo, has_program, root, run};

/// The crate's output under `target/wasm32-unknown-unknown/wasm-js/` (the
/// workspace's `wasm-js` profile: `opt-level = "z"`).
const WASM_FILE: &str = "signoff_wasm.wasm";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        })
        .unwrap_or_else(|| root().join("target"))
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let shown = format!("{what} {}", path.display());
    move |error| format!("{shown}: {error}")
}

/// The version of the `wasm-bindgen` crate in `Cargo.lock`.
fn locked_wasm_bindgen() -> Result<String> {
    let lock_path = root().join("Cargo.lock");
    let lock = fs::read_to_string(&lock_path).map_err(io("read", &lock_path))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            let version = lines
                .next()
                .and_then(|line| line.trim().strip_prefix("version = \""))
                .and_then(|rest| rest.strip_suffix('"'));
            if let Some(version) = version {
                return Ok(version.to_owned());
            }
        }
    }
    Err("Cargo.lock names no wasm-bindgen version".into())
}

/// Installs wasm-bindgen-cli at the locked version unless it is there.
fn ensure_wasm_bindgen() -> Result {
    let wanted = locked_wasm_bindgen()?;
    let installed = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    if installed.as_deref() == Some(format!("wasm-bindgen {wanted}").as_str()) {
        return Ok(());
    }
    // Not `--locked`: the CLI's own lockfile names a crate version the
    // registry no longer serves.
    cargo(&["install", "wasm-bindgen-cli", "--version", &wanted])
}

/// `npm ci` where `node_modules` is missing or older than the lockfile: in
/// `wasm/tests` (binaryen's wasm-opt, typescript, fake-indexeddb, miniflare
/// with workerd, webpack, vite, esbuild, and the package) and in
/// `wasm/examples` (the package only).
fn ensure_node_modules() -> Result {
    let modified = |path: &Path| fs::metadata(path).and_then(|meta| meta.modified()).ok();
    for dir in ["wasm/tests", "wasm/examples"] {
        let dir = root().join(dir);
        let installed = modified(&dir.join("node_modules/.package-lock.json"));
        let locked = modified(&dir.join("package-lock.json"));
        if installed.is_none() || installed < locked {
            run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir))?;
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result {
    fs::create_dir_all(to).map_err(io("create", to))?;
    for entry in fs::read_dir(from).map_err(io("read", from))? {
        let entry = entry.map_err(io("read", from))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).map_err(io("copy to", &target))?;
        }
    }
    Ok(())
}

/// The path of `glue.js` inside an output folder, relative to it.
fn glue_path(out: &Path) -> Result<String> {
    fn find(dir: &Path) -> Option<PathBuf> {
        for entry in fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if let Some(found) = find(&path) {
                    return Some(found);
                }
            } else if path.file_name().is_some_and(|name| name == "glue.js") {
                return Some(path);
            }
        }
        None
    }
    let found = find(&out.join("snippets")).ok_or("wasm-bindgen wrote no glue.js snippet")?;
    let relative = found
        .strip_prefix(out)
        .map_err(|error| error.to_string())?
        .to_string_lossy()
        .replace('\\', "/");
    Ok(format!("./{relative}"))
}

/// What a wasm-bindgen glue exports to users: its classes and functions, in
/// order, without the internal `MemoryCacheHandle`.
#[derive(Debug, PartialEq)]
enum Export {
    Class(String),
    Function(String),
}

impl Export {
    fn name(&self) -> &str {
        match self {
            Export::Class(name) | Export::Function(name) => name,
        }
    }
}

/// The exports of the web (ES module) glue: `export class X` and
/// `export function f` lines.
fn web_exports(glue: &str) -> Vec<Export> {
    glue.lines()
        .filter_map(|line| {
            let word = |rest: &str| {
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .map(str::to_owned)
            };
            if let Some(rest) = line.strip_prefix("export class ") {
                word(rest).map(Export::Class)
            } else if let Some(rest) = line.strip_prefix("export function ") {
                word(rest).map(Export::Function)
            } else {
                None
            }
        })
        .filter(|export| export.name() != "MemoryCacheHandle")
        .collect()
}

/// The names the Node (CommonJS) glue exports, in order.
fn node_exports(glue: &str) -> Vec<String> {
    glue.lines()
        .filter_map(|line| line.strip_prefix("exports."))
        .filter_map(|rest| rest.split_once(" = "))
        .map(|(name, _)| name.to_owned())
        .filter(|name| !name.starts_with("__") && name != "MemoryCacheHandle")
        .collect()
}

/// An ES module whose only imports are none and whose only exports are
/// `export class` and `export [async] function` declarations (`glue.js`,
/// `conformance.js`) as a CommonJS module: the same text with `export `
/// dropped and the names assigned to `exports`.
fn commonjs_glue(glue: &str) -> Result<String> {
    let mut names = Vec::new();
    let mut out = String::from("\"use strict\";\n");
    for line in glue.lines() {
        let Some(rest) = line.strip_prefix("export ") else {
            if line.trim_start().starts_with("export ") || line.starts_with("import ") {
                return Err(format!("glue.js: cannot turn `{line}` into CommonJS"));
            }
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let name = rest
            .strip_prefix("class ")
            .or_else(|| rest.strip_prefix("function "))
            .or_else(|| rest.strip_prefix("async function "))
            .and_then(|rest| {
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
            })
            .filter(|name| !name.is_empty())
            .ok_or_else(|| {
                format!(
                    "glue.js: only `export class` and `export function` are supported, not `{line}`"
                )
            })?;
        names.push(name.to_owned());
        out.push_str(rest);
        out.push('\n');
    }
    for name in names {
        out.push_str(&format!("exports.{name} = {name};\n"));
    }
    Ok(out)
}

fn write(path: &Path, text: &str) -> Result {
    fs::write(path, text).map_err(io("write", path))
}

fn remove(path: &Path) -> Result {
    fs::remove_file(path).map_err(io("remove", path))
}

/// The `repository` of the workspace's `Cargo.toml`, for the npm package.
fn workspace_repository() -> Result<String> {
    let path = root().join("Cargo.toml");
    let manifest = fs::read_to_string(&path).map_err(io("read", &path))?;
    manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("repository"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .filter_map(|value| value.trim().strip_prefix('"')?.strip_suffix('"'))
        .map(str::to_owned)
        .next()
        .ok_or_else(|| "Cargo.toml names no workspace repository".into())
}

/// The wasm path in wasm-bindgen's Node glue, and where the package's one
/// `.wasm` is from `node/`.
const NODE_WASM_PATH: &str = "`${__dirname}/signoff_wasm_bg.wasm`";
const SHARED_WASM_PATH: &str = "`${__dirname}/../web/signoff_wasm_bg.wasm`";

/// Writes the package files around the two wasm-bindgen outputs: the guarded
/// web entry, the CommonJS and ES module Node entries over one `.wasm`, the
/// declarations, the README and the examples.
fn write_package(pkg: &Path) -> Result {
    let templates = root().join("wasm/package");
    let template = |name: &str| {
        let path = templates.join(name);
        fs::read_to_string(&path).map_err(io("read", &path))
    };
    let repository = workspace_repository()?;
    for name in ["package.json", "README.md"] {
        write(
            &pkg.join(name),
            &template(name)?.replace("{{REPOSITORY}}", &repository),
        )?;
    }
    write(&pkg.join("wasm.d.ts"), &template("wasm.d.ts")?)?;
    let conformance = template("conformance.js")?;
    write(&pkg.join("conformance.cjs"), &commonjs_glue(&conformance)?)?;
    write(&pkg.join("conformance.js"), &conformance)?;
    let conformance_types = template("conformance.d.ts")?;
    write(&pkg.join("conformance.d.ts"), &conformance_types)?;
    write(&pkg.join("conformance.d.cts"), &conformance_types)?;
    let declarations = template("index.d.ts")?;

    let web = pkg.join("web");
    let web_glue_path = web.join("signoff_wasm.js");
    let web_glue = fs::read_to_string(&web_glue_path).map_err(io("read", &web_glue_path))?;
    let guarded: String = web_exports(&web_glue)
        .iter()
        .map(|export| match export {
            Export::Class(name) => format!("export const {name} = guardClass(glue.{name});\n"),
            Export::Function(name) => {
                format!("export const {name} = guardFunction(glue.{name});\n")
            }
        })
        .collect();
    write(
        &web.join("index.js"),
        &template("web.index.js")?
            .replace("{{GLUE}}", &glue_path(&web)?)
            .replace("{{EXPORTS}}", &guarded),
    )?;
    write(
        &web.join("index.d.ts"),
        &(declarations.clone() + &template("web.init.d.ts")?),
    )?;
    // The IndexedDB cache, `signoff/indexeddb`: beside the web entry, so
    // that a page served the web build (the editor, at /pkg/) finds it too.
    write(&web.join("indexeddb.js"), &template("indexeddb.js")?)?;
    write(&web.join("indexeddb.d.ts"), &template("indexeddb.d.ts")?)?;
    // The raw exports of the `.wasm`, which no user imports.
    remove(&web.join("signoff_wasm_bg.wasm.d.ts"))?;

    let node = pkg.join("node");
    let node_glue_path = node.join("signoff_wasm.js");
    let node_glue = fs::read_to_string(&node_glue_path).map_err(io("read", &node_glue_path))?;
    if node_glue.matches(NODE_WASM_PATH).count() != 1 {
        return Err(format!(
            "the Node glue no longer reads {NODE_WASM_PATH}: update xtask/src/js.rs"
        ));
    }
    write(
        &node_glue_path,
        &node_glue.replace(NODE_WASM_PATH, SHARED_WASM_PATH),
    )?;
    remove(&node.join("signoff_wasm_bg.wasm"))?;
    remove(&node.join("signoff_wasm_bg.wasm.d.ts"))?;
    let node_glue_snippet = glue_path(&node)?;
    let snippet = node.join(&node_glue_snippet);
    let esm = fs::read_to_string(&snippet).map_err(io("read", &snippet))?;
    write(&snippet, &commonjs_glue(&esm)?)?;
    let names = node_exports(&node_glue);
    let cjs_exports: String = names
        .iter()
        .map(|name| format!("exports.{name} = bindings.{name};\n"))
        .collect();
    write(
        &node.join("index.cjs"),
        &template("node.index.cjs")?
            .replace("{{GLUE}}", &node_glue_snippet)
            .replace("{{EXPORTS}}", &cjs_exports),
    )?;
    let esm_exports: String = names
        .iter()
        .map(|name| format!("export const {name} = bindings.{name};\n"))
        .collect();
    write(
        &node.join("index.mjs"),
        &template("node.index.mjs")?.replace("{{EXPORTS}}", &esm_exports),
    )?;
    let node_declarations = declarations + &template("node.init.d.ts")?;
    // `index.d.ts` is CommonJS (node/package.json), `index.d.mts` an ES module.
    write(&node.join("index.d.ts"), &node_declarations)?;
    write(&node.join("index.d.mts"), &node_declarations)?;
    write(&node.join("package.json"), "{ \"type\": \"commonjs\" }\n")?;

    copy_examples(&pkg.join("examples"))
}

/// The examples of `wasm/examples/` that run from the package, without the
/// ones that only make sense in this repository (benchmarks, lockfiles).
fn copy_examples(to: &Path) -> Result {
    let from = root().join("wasm/examples");
    fn walk(from: &Path, to: &Path) -> Result {
        fs::create_dir_all(to).map_err(io("create", to))?;
        for entry in fs::read_dir(from).map_err(io("read", from))? {
            let entry = entry.map_err(io("read", from))?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if name != "node_modules" {
                    walk(&path, &to.join(&*name))?;
                }
            } else if [".mjs", ".js", ".md", ".toml"]
                .iter()
                .any(|extension| name.ends_with(extension))
            {
                let target = to.join(&*name);
                fs::copy(&path, &target).map_err(io("copy to", &target))?;
            }
        }
        Ok(())
    }
    walk(&from, to)
}

/// The `wasm-opt` settings for the package's `.wasm`, chosen for its size
/// once compressed, which is what is downloaded: `-Os` without inlining
/// (LLVM has inlined already; binaryen's inlining makes the file smaller raw
/// but about 10 KB larger gzipped), and without the name and producers
/// sections. Measured in docs/PERFORMANCE.md.
const WASM_OPT_FLAGS: &[&str] = &[
    "-Os",
    "--no-inline=*",
    "-fimfs=0",
    "-ocimfs=0",
    "--strip-debug",
    "--strip-producers",
];

/// `wasm-opt` over the package's `.wasm`, when binaryen is there.
fn shrink(pkg: &Path) -> Result {
    let local = root().join("wasm/tests/node_modules/.bin/wasm-opt");
    let wasm_opt = if local.exists() {
        local.into_os_string()
    } else if has_program("wasm-opt") {
        "wasm-opt".into()
    } else {
        eprintln!("wasm-opt not found: the package keeps wasm-bindgen's output");
        return Ok(());
    };
    let file = pkg.join("web/signoff_wasm_bg.wasm");
    run(Command::new(&wasm_opt)
        .args(WASM_OPT_FLAGS)
        .arg(&file)
        .arg("-o")
        .arg(&file))
}

/// Builds `wasm/pkg/`: the `signoff` npm package for browsers, edge runtimes
/// and Node.
pub fn build() -> Result {
    ensure_wasm_bindgen()?;
    cargo(&[
        "build",
        "-p",
        "signoff-wasm",
        "--features",
        "js",
        "--target",
        "wasm32-unknown-unknown",
        "--profile",
        "wasm-js",
    ])?;
    let built = target_dir()
        .join("wasm32-unknown-unknown/wasm-js")
        .join(WASM_FILE);
    let staging = target_dir().join("signoff-js");
    fs::create_dir_all(&staging).map_err(io("create", &staging))?;
    let module = staging.join(WASM_FILE);
    fs::copy(&built, &module).map_err(io("copy", &built))?;

    let pkg = root().join("wasm/pkg");
    if pkg.exists() {
        fs::remove_dir_all(&pkg).map_err(io("remove", &pkg))?;
    }
    for (flavour, target) in [("web", "web"), ("node", "nodejs")] {
        let out = staging.join(flavour);
        if out.exists() {
            fs::remove_dir_all(&out).map_err(io("remove", &out))?;
        }
        run(Command::new("wasm-bindgen")
            .args(["--target", target, "--out-dir"])
            .arg(&out)
            .arg(&module))?;
        copy_dir(&out, &pkg.join(flavour))?;
    }
    write_package(&pkg)?;
    ensure_node_modules()?;
    shrink(&pkg)
}

/// Runs the binding's Rust tests and the Node suites of `wasm/tests/`
/// against `wasm/pkg/` (built by [`build`]).
pub fn test() -> Result {
    cargo(&[
        "test",
        "--release",
        "-p",
        "signoff-wasm",
        "--features",
        "js",
    ])?;
    ensure_node_modules()?;
    let tests = root().join("wasm/tests");
    // The Node project (with @types/node), then a browser project with
    // neither @types/node nor the `esnext.disposable` library.
    for project in [".", "tsconfig.bare.json"] {
        run(Command::new("npx")
            .args(["--no-install", "tsc", "--noEmit", "-p", project])
            .current_dir(&tests))?;
    }
    run(Command::new("node")
        .args(["--test", "--test-reporter=spec"])
        .current_dir(&tests))
}
