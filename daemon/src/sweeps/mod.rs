//! Parameter sweeps: a definition is planned into trials ([`plan`]), recorded in the log, and run by the
//! scheduler as child processes within the host's resources ([`resources`]): [`runner`] is the scheduler's
//! loop, `launch` starts trials, `recover` picks up after a restart, `record` holds the scheduler's handles
//! ([`Deps`]) and records its events in order, `live` the trials it runs. The scheduler reads the sweeps view and
//! writes events; it is reached through its mailbox ([`crate::mailbox::Sweeps`]).

pub mod adaptive;
pub mod files;
mod launch;
mod live;
pub mod plan;
pub mod pruning;
mod record;
mod recover;
pub mod resources;
pub mod runner;
pub mod search;
pub mod slurm;

pub use record::Deps;
