//! The JSON report of a run.

use super::*;

/// One rebuilt object and what the differ said about it.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectReport {
    /// The livepatch object (`vmlinux` or a module name).
    pub object: String,
    /// The object file, relative to the build directory.
    pub source: String,
    /// `patch`, `no-change`, `refused`, or `ignored`.
    pub outcome: String,
    /// Changed functions.
    pub changed_functions: Vec<String>,
    /// New functions.
    pub new_functions: Vec<String>,
    /// Refusals.
    pub errors: Vec<lp_diff::Diagnostic>,
    /// Warnings.
    pub warnings: Vec<lp_diff::Diagnostic>,
}

/// A patch file in the report.
#[derive(Debug, Clone, Serialize)]
pub struct PatchFileReport {
    /// The file name.
    pub file: String,
    /// sha256 of its contents, hex.
    pub sha256: String,
}

/// The report printed at the end and written as `<module>.json` with `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// lp-build's version.
    pub lp_build_version: String,
    /// `patch`, `no-change` or `refused`.
    pub outcome: String,
    /// The module name.
    pub module: String,
    /// The module file written.
    pub output: Option<PathBuf>,
    /// The kernel version of the tree.
    pub kernel: String,
    /// The source tree.
    pub source_tree: PathBuf,
    /// The patch files and their sha256.
    pub patches: Vec<PatchFileReport>,
    /// The cache build directory and whether it was built (`cold`) or reused (`warm`).
    pub cache_build: PathBuf,
    /// `cold` or `warm`.
    pub cache: String,
    /// Every rebuilt object.
    pub objects: Vec<ObjectReport>,
    /// Special-section entry sizes used.
    pub entry_sizes: BTreeMap<String, u64>,
    /// Seconds per phase.
    pub phases: PhaseTimes,
    /// The key the module was signed with (`None`: unsigned).
    pub signed_with: Option<PathBuf>,
}

pub(super) fn write_report(args: &BuildArgs, c: &Checked, report: &Report) -> Result<()> {
    if !args.json {
        return Ok(());
    }
    let p = c.output_dir.join(format!("{}.json", c.module));
    write_output(&p, &serde_json::to_vec_pretty(report)?, OUTPUT_HINT)?;
    eprintln!("wrote {}", p.display());
    Ok(())
}

/// One report entry per diffed object, then one per rebuilt object no binary links.
pub(super) fn object_reports(
    diffs: &[(Pair, String, lp_diff::DiffResult)],
    ignored: &[String],
) -> Vec<ObjectReport> {
    let mut object_reports: Vec<ObjectReport> = diffs
        .iter()
        .map(|(p, obj, r)| ObjectReport {
            object: obj.clone(),
            source: p.rel.clone(),
            outcome: outcome_name(r.outcome).to_string(),
            changed_functions: r.changed_functions.clone(),
            new_functions: r.new_functions.clone(),
            errors: r.errors.clone(),
            warnings: r.warnings.clone(),
        })
        .collect();
    for i in ignored {
        object_reports.push(ObjectReport {
            object: String::new(),
            source: i.clone(),
            outcome: "ignored".into(),
            changed_functions: vec![],
            new_functions: vec![],
            errors: vec![],
            warnings: vec![],
        });
    }
    object_reports
}
