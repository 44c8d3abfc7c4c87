//! `kiln image` and `kiln dockerfile`: arguments into a request for kiln-ship,
//! which does the work and says what it did.

use super::{load_workspace, open_cache};
use crate::args::{Cli, DockerfileArgs, ImageArgs};
use crate::reporter::Reporter;
use kiln_diagnostics::Result;
use kiln_ship::{DockerfileRequest, ImageRequest};
use std::process::ExitCode;

pub(crate) fn image(cli: &Cli, args: &ImageArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli, args.flags(&cli.global))?;
    let req = ImageRequest {
        output: args.output.clone(),
        push: args.push.clone(),
        tags: args.tags.clone(),
        base: args.base.clone(),
        insecure: args.insecure,
        sign_key: args.sign_key.clone(),
        attach: !args.no_attach,
        layer_cache: open_cache(&ws).ok().map(|c| c.root().join("layers")),
    };
    kiln_ship::image(&ws, &req, &|e| r.emit(&e))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn dockerfile(cli: &Cli, args: &DockerfileArgs, r: &Reporter) -> Result<ExitCode> {
    let ws = load_workspace(cli, cli.global.flags())?;
    let req = DockerfileRequest {
        base: args.base.clone(),
        output: args.output.clone(),
    };
    r.emit(&kiln_ship::dockerfile(&ws, &req)?);
    Ok(ExitCode::SUCCESS)
}
