//! `kiln config`: the effective settings and where each comes from.

use super::load_workspace;
use crate::args::{ConfigArgs, GlobalArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_schema::{Event, SettingRecord};
use std::process::ExitCode;

pub(crate) fn config(g: &GlobalArgs, args: &ConfigArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(&args.manifest, g.flags())?;
    r.emit(&Event::Settings {
        settings: ws
            .settings
            .rows(&ws.config)
            .into_iter()
            .map(|row| SettingRecord {
                key: row.key.into(),
                value: row.value,
                origin: row.origin.into(),
            })
            .collect(),
    });
    Ok(ExitCode::SUCCESS)
}
