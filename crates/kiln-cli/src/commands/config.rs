//! `kiln config`: the effective settings and where each comes from.

use super::load_workspace;
use crate::args::Cli;
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_schema::{Event, SettingRecord};
use std::process::ExitCode;

pub(crate) fn config(cli: &Cli, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli)?;
    let rows = ws.settings.rows();
    if r.is_json() {
        r.event(&Event::Settings {
            settings: rows
                .into_iter()
                .map(|(key, value, origin)| SettingRecord {
                    key: key.into(),
                    value,
                    origin,
                })
                .collect(),
        });
    } else {
        for (key, value, origin) in rows {
            r.output(&format!("{key:<18} {value:<24} ({origin})"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
