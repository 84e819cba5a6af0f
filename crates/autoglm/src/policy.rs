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
        /// The input document, a JSON file (`-` for stdin).
        #[arg(short = 'i', long = "input", value_name = "FILE")]
        input: Option<PathBuf>,
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
            v0_compatible,
            query,
        } => eval(&data, input.as_deref(), syntax(v0_compatible), &query),
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

/// Every `*.rego` file under `paths` (a file named is taken whatever its
/// name), as (path, source), folders walked in name order.
fn rego_files(paths: &[PathBuf]) -> Result<Vec<(String, String)>, String> {
    fn walk(path: &Path, named: bool, out: &mut Vec<(String, String)>) -> Result<(), String> {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                walk(&entry, false, out)?;
            }
        } else if named || path.extension().is_some_and(|e| e == "rego") {
            let source = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            out.push((path.display().to_string(), source));
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(format!("{} does not exist", path.display()));
        }
        walk(path, true, &mut files)?;
    }
    Ok(files)
}

fn test(paths: &[PathBuf], verbose: bool, syntax: Syntax) -> Result<ExitCode, String> {
    let files = rego_files(paths)?;
    let report = run_tests(&files, syntax).map_err(|(file, e)| format!("{file}: {e}"))?;
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
) -> Result<ExitCode, String> {
    let mut rego = Vec::new();
    let mut documents = serde_json::Map::new();
    for (path, source) in rego_files(data)? {
        if path.ends_with(".json") {
            let value: serde_json::Value =
                serde_json::from_str(&source).map_err(|e| format!("{path} is not JSON: {e}"))?;
            if let serde_json::Value::Object(map) = value {
                documents.extend(map);
            }
        } else {
            rego.push((path, source));
        }
    }
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
            Some(serde_json::from_str(&text).map_err(|e| format!("the input is not JSON: {e}"))?)
        }
    };
    let data = (!documents.is_empty()).then_some(serde_json::Value::Object(documents));
    let answer = eval_query(&rego, syntax, data, input, query).map_err(|e| e.to_string())?;
    let pretty = serde_json::to_string_pretty(&answer).map_err(|e| e.to_string())?;
    println!("{pretty}");
    Ok(ExitCode::SUCCESS)
}
