//! Saving a flow safely: the structure is checked, then every SVAML the flow can emit is rendered and
//! run through the gate's validator for the event it would answer. A flow with any error is refused.

use serde::Serialize;

use super::engine::emissions;
use super::model::{has_errors, FlowDoc, FlowProblem};
use crate::svaml::{Mode, Report, Target, Validator};

/// The report of one emission.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmissionReport {
    /// Node id.
    pub node: String,
    /// ice, ace or pie.
    #[schema(value_type = Target)]
    pub event: &'static str,
    /// The gate's report for the rendered SVAML.
    pub report: Report,
}

/// Everything found when checking a flow.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowCheck {
    /// Whether the flow may be saved.
    pub valid: bool,
    /// Structural problems (errors and warnings).
    pub problems: Vec<FlowProblem>,
    /// One gate report per SVAML the flow can emit (empty when the structure has errors).
    pub emissions: Vec<EmissionReport>,
}

/// Checks a flow for saving.
pub fn check_flow(validator: &Validator, mode: Mode, flow: &FlowDoc) -> FlowCheck {
    let problems = flow.check_structure();
    let structural_ok = !has_errors(&problems);
    let reports: Vec<EmissionReport> = if structural_ok {
        emissions(flow)
            .into_iter()
            .filter_map(|e| {
                let target: Target = e.target.parse().ok()?;
                Some(EmissionReport {
                    node: e.node,
                    event: e.target,
                    report: validator.check(target, &e.svaml, mode),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let valid = structural_ok && reports.iter().all(|r| r.report.valid);
    FlowCheck {
        valid,
        problems,
        emissions: reports,
    }
}
