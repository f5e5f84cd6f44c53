//! Parameter sweeps: a definition is planned into trials ([`plan`]), recorded in the log, and run by the
//! scheduler as child processes within the host's resources ([`resources`], [`runner`]).

pub mod plan;
pub mod resources;
pub mod runner;
