//! `autoglm policy test DIR` and `autoglm policy eval`: Rego run offline as
//! `opa test` and `opa eval` run it, with the evaluation the console uses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use autoglm_policy::{Syntax, TestOutcome, eval_query, run_tests};

/// `autoglm policy …`.
#[derive(clap::Subcommand, Debug)]
pub enum PolicyCommand {
    /// Run the `test_` rules of the `*.rego` files under DIR, as `opa test` does:
    /// exit 0 when all pass, 2 naming each failing test.
    Test {
        /// Folders or files of Rego.
        #[arg(required = true, value_name = "DIR")]
        paths: Vec<PathBuf>,
        /// Print passing tests too.
        #[arg(short, long)]
        verbose: bool,
        /// The files are Rego v0 (OPA's `--v0-compatible`).
        #[arg(long)]
        v0_compatible: bool,
    },
    /// Evaluate a query, printed as `opa eval --format=json` prints it.
    Eval {
        /// Rego files or folders of them (`-d`, as OPA's `--data`).
        #[arg(short = 'd', long = "data", value_name = "PATH")]
        data: Vec<PathBuf>,
        /// The input document, a JSON or YAML file (`-` for stdin).
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<PathBuf>,
        /// Read the input document from stdin (OPA's `-I`).
        #[arg(short = 'I', long = "stdin-input", conflicts_with = "input")]
        stdin_input: bool,
        /// `json` (OPA's result document), `pretty` (the value alone, indented) or `raw`
        /// (the value alone; a string unquoted).
        #[arg(short = 'f', long = "format", default_value = "json", value_parser = ["json", "pretty", "raw"])]
        format: String,
        /// The files are Rego v0.
        #[arg(long)]
        v0_compatible: bool,
        /// The query, e.g. `data.example.deny`.
        query: String,
    },
}

/// Exit code of failing tests, as `opa test` uses.
const EXIT_FAILED: u8 = 2;
/// Exit code of files that cannot be read or parsed.
const EXIT_BAD_INPUT: u8 = 1;

/// Runs one `autoglm policy` command.
pub fn run(command: PolicyCommand) -> ExitCode {
    let outcome = match command {
        PolicyCommand::Test {
            paths,
            verbose,
            v0_compatible,
        } => test(&paths, verbose, syntax(v0_compatible)),
        PolicyCommand::Eval {
            data,
            input,
            stdin_input,
            format,
            v0_compatible,
            query,
        } => {
            let input = if stdin_input {
                Some(PathBuf::from("-"))
            } else {
                input
            };
            eval(
                &data,
                input.as_deref(),
                syntax(v0_compatible),
                &query,
                &format,
            )
        }
    };
    outcome.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_BAD_INPUT)
    })
}

fn syntax(v0_compatible: bool) -> Syntax {
    if v0_compatible {
        Syntax::V0
    } else {
        Syntax::V1
    }
}

/// What `-d`/DIR paths hold, loaded as OPA loads them: every `*.rego`
/// file a module, every `*.json`, `*.yaml` and `*.yml` file a data document
/// placed at its folder's path below the path given (a file named directly
/// at the root), folders walked in name order.
#[derive(Debug, Default)]
struct Loaded {
    modules: Vec<(String, String)>,
    data: serde_json::Map<String, serde_json::Value>,
}

fn load(paths: &[PathBuf]) -> Result<Loaded, String> {
    fn walk(path: &Path, root: &Path, loaded: &mut Loaded) -> Result<(), String> {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, root, loaded)?;
            }
            return Ok(());
        }
        let shown = path.display().to_string();
        let value: serde_json::Value = match path.extension().and_then(|e| e.to_str()) {
            Some("rego") => {
                loaded.modules.push((shown, read(path)?));
                return Ok(());
            }
            Some("json") => serde_json::from_str(&read(path)?)
                .map_err(|e| format!("{shown} is not JSON: {e}"))?,
            Some("yaml" | "yml") => serde_yaml_ng::from_str(&read(path)?)
                .map_err(|e| format!("{shown} is not YAML: {e}"))?,
            _ => return Ok(()),
        };
        let folder = path.parent().unwrap_or(root);
        let at: Vec<String> = folder
            .strip_prefix(root)
            .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        merge(&mut loaded.data, &at, value)
            .map_err(|key| format!("{shown}: {key} is defined twice"))
    }
    let mut loaded = Loaded::default();
    for path in paths {
        if !path.exists() {
            return Err(format!("{} does not exist", path.display()));
        }
        let root = if path.is_dir() {
            path.as_path()
        } else {
            path.parent().unwrap_or(path)
        };
        walk(path, root, &mut loaded)?;
    }
    Ok(loaded)
}

/// Merges `value` into `data` at the path `at`, objects key by key; a key
/// that two documents give other than as objects is an error naming it.
fn merge(
    data: &mut serde_json::Map<String, serde_json::Value>,
    at: &[String],
    value: serde_json::Value,
) -> Result<(), String> {
    use serde_json::Value;
    let Some((first, rest)) = at.split_first() else {
        let Value::Object(object) = value else {
            return Err("the document (not an object)".to_owned());
        };
        return merge_objects(data, object);
    };
    let next = data
        .entry(first.clone())
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    match next {
        Value::Object(inner) => merge(inner, rest, value),
        _ => Err(first.clone()),
    }
}

/// Adds `theirs` to `mine`, objects merged key by key.
fn merge_objects(
    mine: &mut serde_json::Map<String, serde_json::Value>,
    theirs: serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    use serde_json::Value;
    for (key, value) in theirs {
        match (mine.get_mut(&key), value) {
            (Some(Value::Object(inner)), Value::Object(more)) => merge_objects(inner, more)?,
            (Some(_), _) => return Err(key),
            (None, value) => {
                mine.insert(key, value);
            }
        }
    }
    Ok(())
}

fn test(paths: &[PathBuf], verbose: bool, syntax: Syntax) -> Result<ExitCode, String> {
    let loaded = load(paths)?;
    let data = (!loaded.data.is_empty()).then_some(serde_json::Value::Object(loaded.data));
    let report =
        run_tests(&loaded.modules, syntax, data).map_err(|(file, e)| format!("{file}: {e}"))?;
    if report.results.is_empty() {
        return Err("no test_ rules found".to_owned());
    }
    let mut file = None;
    for result in &report.results {
        let shown = verbose || result.outcome != TestOutcome::Pass;
        if !shown {
            continue;
        }
        if file != Some(&result.file) {
            println!("{}:", result.file);
            file = Some(&result.file);
        }
        let took = format!("{:?}", result.duration);
        match &result.outcome {
            TestOutcome::Pass => println!("{}: PASS ({took})", result.name),
            TestOutcome::Fail => println!("{}: FAIL ({took})", result.name),
            TestOutcome::Error(e) => println!("{}: ERROR ({took})\n  {e}", result.name),
        }
    }
    let total = report.results.len();
    let count = |wanted: fn(&TestOutcome) -> bool| {
        report.results.iter().filter(|r| wanted(&r.outcome)).count()
    };
    let passed = count(|o| *o == TestOutcome::Pass);
    let failed = count(|o| *o == TestOutcome::Fail);
    let errors = count(|o| matches!(o, TestOutcome::Error(_)));
    println!("{}", "-".repeat(80));
    println!("PASS: {passed}/{total}");
    if failed > 0 {
        println!("FAIL: {failed}/{total}");
    }
    if errors > 0 {
        println!("ERROR: {errors}/{total}");
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn eval(
    data: &[PathBuf],
    input: Option<&Path>,
    syntax: Syntax,
    query: &str,
    format: &str,
) -> Result<ExitCode, String> {
    let loaded = load(data)?;
    let input = match input {
        None => None,
        Some(path) => {
            let text = if path == Path::new("-") {
                std::io::read_to_string(std::io::stdin())
                    .map_err(|e| format!("cannot read stdin: {e}"))?
            } else {
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            };
            Some(
                serde_yaml_ng::from_str::<serde_json::Value>(&text)
                    .map_err(|e| format!("the input is neither JSON nor YAML: {e}"))?,
            )
        }
    };
    let data = (!loaded.data.is_empty()).then_some(serde_json::Value::Object(loaded.data));
    let answer =
        eval_query(&loaded.modules, syntax, data, input, query).map_err(|e| e.to_string())?;
    let value = &answer["result"][0]["expressions"][0]["value"];
    let printed = match format {
        "raw" => match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        "pretty" if answer["result"].as_array().is_some_and(|r| r.len() == 1) => {
            serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
        }
        _ => serde_json::to_string_pretty(&answer).map_err(|e| e.to_string())?,
    };
    println!("{printed}");
    Ok(ExitCode::SUCCESS)
}
