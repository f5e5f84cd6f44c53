//! What a hub changes in another host's event before appending it to its own log, and only that:
//! - its origin: the host and the event's sequence number there;
//! - file paths (the event's source, a file's ingest record, a sweep's folder, a trial's run log) qualified by
//!   the host, `<host>:<path>`: a path means nothing without its machine, and two hosts' `/data/inbox/run.jsonl`
//!   are two files;
//! - the id of a run, sweep or benchmark that is already taken here by another host's (or the hub's own):
//!   `<id>@<host>`, with the id it has on its host kept in the origin. Ids that are free stay as they are, so an
//!   id names the same run on its host and on the hub;
//! - project ids (MLflow's experiment ids, `1`, `2`, ... on every host): always `<id>@<host>`.
//!
//! Everything else (values, configs, times) is kept bit for bit.

use crate::ids::Ids;
use crate::views::Views;
use labd_log::Seq;
use labd_schemas::sweep::TrialState;
use labd_schemas::{Event, EventKind, ExperimentId, Origin, Source};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Space {
    Run,
    Sweep,
    Bench,
}

/// The names other hosts' runs, sweeps and benchmarks have here.
#[derive(Debug, Default)]
pub struct Names {
    /// Host → per space (run, sweep, benchmark): id on the host → the id here when it differs (`None`: the
    /// same). Looked up with borrowed keys: this runs for every event a hub receives.
    here: HashMap<String, [HashMap<String, Option<String>>; 3]>,
    /// Sweep and benchmark ids given out here (runs' are in the shared [`Ids`]).
    taken: HashSet<(Space, String)>,
}

impl Names {
    /// The names given so far, as the views have them (after a restart).
    pub fn from_views(v: &Views) -> Names {
        let mut n = Names::default();
        for r in v.registry.experiments.values().filter(|r| r.foreign) {
            let orig = r.origin_id.as_ref().map(|o| o.0.clone());
            n.record(Space::Run, &r.host, orig, r.id.0.clone());
        }
        for s in v.sweeps.sweeps.values() {
            n.taken.insert((Space::Sweep, s.id.clone()));
            if let Some(h) = &s.host {
                n.record(Space::Sweep, h, s.origin_id.clone(), s.id.clone());
            }
        }
        for b in v.benchmarks.benches.values() {
            n.taken.insert((Space::Bench, b.id.clone()));
            if let Some(h) = &b.origin {
                n.record(Space::Bench, h, b.origin_id.clone(), b.id.clone());
            }
        }
        n
    }

    /// Records the id here of a host's `orig` (`None`: the same as `here`).
    fn record(&mut self, space: Space, host: &str, orig: Option<String>, here: String) {
        let map = &mut self.here.entry(host.to_string()).or_default()[space as usize];
        match orig {
            Some(orig) => map.insert(orig, Some(here)),
            None => map.insert(here, None),
        };
    }

    /// `event`, recorded as `seq` on `host`, as this hub records it. `in_use` tells whether a sweep or benchmark
    /// id is in use here by the hub's own (the views, which may have gained one since these names were read).
    pub fn localize(
        &mut self,
        ids: &Ids,
        in_use: &dyn Fn(&str, bool) -> bool,
        host: &str,
        seq: Seq,
        mut event: Event,
    ) -> Event {
        let mut renamed = None;
        let mut run = |exp: &mut ExperimentId, names: &mut Names| {
            if let Some(here) = names.name(Space::Run, host, &exp.0, &mut |id| {
                ids.claim(&ExperimentId(id.to_string()))
            }) {
                renamed = Some(std::mem::replace(&mut exp.0, here));
            }
        };
        match &mut event.kind {
            EventKind::ExperimentCreated(e) => {
                run(&mut e.exp, self);
                if let Some(p) = &mut e.project {
                    *p = project(host, p);
                }
            }
            EventKind::RunChanged(e) => run(&mut e.exp, self),
            EventKind::ProjectCreated(p) => p.project = project(host, &p.project),
            EventKind::ProjectChanged(p) => p.project = project(host, &p.project),
            EventKind::MetricsLogged(e) => run(&mut e.exp, self),
            EventKind::MessageLogged(e) => run(&mut e.exp, self),
            EventKind::SummaryRecorded(e) => run(&mut e.exp, self),
            EventKind::ArtifactRecorded(e) => run(&mut e.exp, self),
            EventKind::StatusChanged(e) => run(&mut e.exp, self),
            EventKind::FileIngested(f) => f.path = qualified(host, &f.path),
            EventKind::IngestError(e) => e.path = qualified(host, &e.path),
            EventKind::SweepCreated(c) => {
                renamed = self.other(Space::Sweep, in_use, host, &mut c.sweep);
                c.dir = qualified(host, &c.dir);
            }
            EventKind::SweepChanged(c) => {
                renamed = self.other(Space::Sweep, in_use, host, &mut c.sweep);
            }
            EventKind::TrialAdded(c) => {
                renamed = self.other(Space::Sweep, in_use, host, &mut c.sweep);
            }
            EventKind::TrialChanged(c) => {
                renamed = self.other(Space::Sweep, in_use, host, &mut c.sweep);
                match &mut c.state {
                    TrialState::Started { run_log, .. }
                    | TrialState::SlurmStarted { run_log, .. } => {
                        *run_log = qualified(host, run_log);
                    }
                    _ => {}
                }
            }
            // A host's firings are shown on the hub under the names its runs and sweeps have here; its rules and
            // deliveries are its own (the hub's alerts view passes them over).
            EventKind::AlertFired(f) => {
                if let Some(exp) = &mut f.subject.run {
                    run(exp, self);
                }
                if let Some(sweep) = &mut f.subject.sweep {
                    renamed = self.other(Space::Sweep, in_use, host, sweep);
                }
            }
            EventKind::AlertRuleSet(_)
            | EventKind::AlertRuleRemoved(_)
            | EventKind::AlertDelivered(_) => {}
            EventKind::BenchStarted(b) => {
                renamed = self.other(Space::Bench, in_use, host, &mut b.bench);
            }
            EventKind::BenchMeasured(b) => {
                renamed = self.other(Space::Bench, in_use, host, &mut b.bench);
            }
            EventKind::BenchChanged(b) => {
                renamed = self.other(Space::Bench, in_use, host, &mut b.bench);
            }
        }
        if let Source::File { path, .. } = &mut event.source {
            *path = qualified(host, path);
        }
        event.origin = Some(Box::new(Origin {
            host: host.to_string(),
            seq,
            id: renamed,
        }));
        event
    }

    /// A sweep's or benchmark's id here; the id on the host when it differs.
    fn other(
        &mut self,
        space: Space,
        in_use: &dyn Fn(&str, bool) -> bool,
        host: &str,
        id: &mut String,
    ) -> Option<String> {
        let sweep = space == Space::Sweep;
        let here = self.name(space, host, id, &mut |candidate| !in_use(candidate, sweep))?;
        Some(std::mem::replace(id, here))
    }

    /// The id here of `id` of `host` in `space` when it is not `id` itself, given out on first sight: `id`
    /// when `claim` takes it, else `<id>@<host>` (then `-2`, `-3`, ...).
    fn name(
        &mut self,
        space: Space,
        host: &str,
        id: &str,
        claim: &mut dyn FnMut(&str) -> bool,
    ) -> Option<String> {
        if let Some(here) = self.here.get(host).and_then(|m| m[space as usize].get(id)) {
            return here.clone();
        }
        let taken = &mut self.taken;
        let mut try_claim = |candidate: &str| -> bool {
            if space == Space::Run {
                return claim(candidate);
            }
            if taken.contains(&(space, candidate.to_string())) || !claim(candidate) {
                return false;
            }
            taken.insert((space, candidate.to_string()));
            true
        };
        let here = if try_claim(id) {
            None
        } else {
            let base = format!("{id}@{host}");
            let mut candidate = base.clone();
            let mut n = 2;
            while !try_claim(&candidate) {
                candidate = format!("{base}-{n}");
                n += 1;
            }
            Some(candidate)
        };
        self.here.entry(host.to_string()).or_default()[space as usize]
            .insert(id.to_string(), here.clone());
        here
    }
}

/// A path of `host`'s as this hub records it.
pub fn qualified(host: &str, path: &str) -> String {
    format!("{host}:{path}")
}

/// A host's project id on the hub, `<id>@<host>`: project ids are small numbers that every host gives out.
fn project(host: &str, id: &str) -> String {
    format!("{id}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::RunStatus;
    use labd_schemas::event::{FileIngested, StatusChanged};

    fn status(exp: &str, path: &str) -> Event {
        Event::new(
            7,
            Source::File {
                path: path.into(),
                first_line: 1,
                last_line: 1,
            },
            EventKind::StatusChanged(StatusChanged {
                exp: ExperimentId(exp.into()),
                status: RunStatus::Completed,
                notes: None,
                extra: Default::default(),
            }),
        )
    }

    fn exp_of(e: &Event) -> &str {
        e.experiment().unwrap().as_str()
    }

    #[test]
    fn free_ids_stay_taken_ones_get_the_host_and_paths_name_their_machine() {
        let ids = Ids::new([ExperimentId("mine".into())]);
        let none = |_: &str, _: bool| false;
        let mut names = Names::default();
        let a = names.localize(&ids, &none, "gpu1", 5, status("run", "/data/r.jsonl"));
        assert_eq!(exp_of(&a), "run");
        assert_eq!(
            a.origin,
            Some(Box::new(Origin {
                host: "gpu1".into(),
                seq: 5,
                id: None
            }))
        );
        let Source::File { path, .. } = &a.source else {
            panic!()
        };
        assert_eq!(path, "gpu1:/data/r.jsonl");
        // Another host's run of the same id, and a run of the hub's own id.
        let b = names.localize(&ids, &none, "gpu2", 9, status("run", "/data/r.jsonl"));
        assert_eq!(exp_of(&b), "run@gpu2");
        assert_eq!(b.origin.unwrap().id.as_deref(), Some("run"));
        let c = names.localize(&ids, &none, "gpu2", 10, status("mine", "/x"));
        assert_eq!(exp_of(&c), "mine@gpu2");
        // The same names again for later events of those runs.
        assert_eq!(
            exp_of(&names.localize(&ids, &none, "gpu2", 11, status("run", "/x"))),
            "run@gpu2"
        );
        assert_eq!(
            exp_of(&names.localize(&ids, &none, "gpu1", 12, status("run", "/x"))),
            "run"
        );
        // The hub's own new runs do not take them.
        assert_eq!(
            ids.unique(ExperimentId("run@gpu2".into())).as_str(),
            "run@gpu2-2"
        );
        let f = Event::new(
            1,
            Source::Daemon,
            EventKind::FileIngested(FileIngested {
                path: "/data/r.jsonl".into(),
                from: 0,
                to: 10,
                lines: 1,
                restarted: None,
            }),
        );
        let EventKind::FileIngested(f) = names.localize(&ids, &none, "gpu1", 13, f).kind else {
            panic!()
        };
        assert_eq!(f.path, "gpu1:/data/r.jsonl");
    }

    /// Project ids are small numbers every host gives out: a host's are always named by the host, and so is
    /// the project of a run it created in one.
    #[test]
    fn projects_are_named_by_their_host() {
        use labd_schemas::event::{ProjectChanged, ProjectCreated, RunChanged};
        let ids = Ids::default();
        let none = |_: &str, _: bool| false;
        let mut names = Names::default();
        let created = Event::new(
            1,
            Source::Daemon,
            EventKind::ProjectCreated(ProjectCreated {
                project: "1".into(),
                name: "scenario".into(),
                tags: Default::default(),
                artifact_location: None,
                extra: Default::default(),
            }),
        );
        let EventKind::ProjectCreated(p) = names.localize(&ids, &none, "gpu1", 1, created).kind
        else {
            panic!()
        };
        assert_eq!(p.project, "1@gpu1");
        let changed = Event::new(
            2,
            Source::Daemon,
            EventKind::ProjectChanged(ProjectChanged {
                project: "0".into(),
                name: Some("main".into()),
                deleted: None,
                set_tags: Default::default(),
                removed_tags: vec![],
            }),
        );
        let EventKind::ProjectChanged(p) = names.localize(&ids, &none, "gpu2", 2, changed).kind
        else {
            panic!()
        };
        assert_eq!(p.project, "0@gpu2");
        let run = Event::new(
            3,
            Source::Daemon,
            EventKind::RunChanged(RunChanged {
                exp: ExperimentId("r".into()),
                ..RunChanged::default()
            }),
        );
        assert_eq!(exp_of(&names.localize(&ids, &none, "gpu1", 3, run)), "r");
    }

    #[test]
    fn sweeps_in_use_here_give_way() {
        let mut names = Names::default();
        let in_use = |id: &str, sweep: bool| sweep && id == "lr";
        let mut name = |host: &str, id: &str| {
            let mut id = id.to_string();
            let renamed = names.other(Space::Sweep, &in_use, host, &mut id);
            (id, renamed)
        };
        assert_eq!(name("gpu1", "lr"), ("lr@gpu1".into(), Some("lr".into())));
        assert_eq!(name("gpu1", "bs"), ("bs".into(), None));
        assert_eq!(name("gpu2", "bs"), ("bs@gpu2".into(), Some("bs".into())));
        assert_eq!(name("gpu1", "lr"), ("lr@gpu1".into(), Some("lr".into())));
    }
}
