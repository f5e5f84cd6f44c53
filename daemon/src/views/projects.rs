//! Projects: named groups of runs (what MLflow calls experiments), from `project_created` and `project_changed`.
//! Project `"0"`, the default project (MLflow's "Default" experiment, where runs go when no project is named),
//! exists without an event.

use labd_schemas::{Event, EventKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The default project's id and name.
pub const DEFAULT_ID: &str = "0";
pub const DEFAULT_NAME: &str = "Default";

/// One project as the view keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub artifact_location: Option<String>,
    pub deleted: bool,
    pub tags: BTreeMap<String, String>,
    /// Unix microseconds (0 for the default project).
    pub created: i64,
    /// When it was last created, renamed, deleted, restored or tagged (Unix microseconds).
    pub updated: i64,
}

impl Project {
    fn default_project() -> Project {
        Project {
            id: DEFAULT_ID.into(),
            name: DEFAULT_NAME.into(),
            artifact_location: None,
            deleted: false,
            tags: BTreeMap::new(),
            created: 0,
            updated: 0,
        }
    }
}

/// The projects view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Projects {
    /// By id; the default project is here once an event changed it.
    projects: BTreeMap<String, Project>,
}

impl Projects {
    pub fn apply(&mut self, event: &Event) {
        match &event.kind {
            EventKind::ProjectCreated(c) => {
                self.projects
                    .entry(c.project.clone())
                    .or_insert_with(|| Project {
                        id: c.project.clone(),
                        name: c.name.clone(),
                        artifact_location: c.artifact_location.clone(),
                        deleted: false,
                        tags: c.tags.clone(),
                        created: event.time,
                        updated: event.time,
                    });
            }
            EventKind::ProjectChanged(c) => {
                let p = match self.projects.get_mut(&c.project) {
                    Some(p) => p,
                    None if c.project == DEFAULT_ID => self
                        .projects
                        .entry(c.project.clone())
                        .or_insert_with(Project::default_project),
                    None => return,
                };
                if let Some(name) = &c.name {
                    p.name = name.clone();
                }
                if let Some(d) = c.deleted {
                    p.deleted = d;
                }
                for (k, v) in &c.set_tags {
                    p.tags.insert(k.clone(), v.clone());
                }
                for k in &c.removed_tags {
                    p.tags.remove(k);
                }
                p.updated = event.time;
            }
            _ => {}
        }
    }

    /// The project `id` (the default project whether or not an event named it).
    pub fn get(&self, id: &str) -> Option<Project> {
        match self.projects.get(id) {
            Some(p) => Some(p.clone()),
            None if id == DEFAULT_ID => Some(Project::default_project()),
            None => None,
        }
    }

    /// The project named `name` (names are unique among projects, deleted ones included).
    pub fn by_name(&self, name: &str) -> Option<Project> {
        self.all().into_iter().find(|p| p.name == name)
    }

    /// Every project, the default one first, then by id.
    pub fn all(&self) -> Vec<Project> {
        let mut out = Vec::with_capacity(self.projects.len() + 1);
        if !self.projects.contains_key(DEFAULT_ID) {
            out.push(Project::default_project());
        }
        out.extend(self.projects.values().cloned());
        out.sort_by_key(|p| (p.id.parse::<u64>().unwrap_or(u64::MAX), p.id.clone()));
        out
    }

    /// The id the next project gets: one more than the largest numeric id.
    pub fn next_id(&self) -> String {
        let max = self
            .projects
            .keys()
            .filter_map(|k| k.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        (max + 1).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::Source;
    use labd_schemas::event::{ProjectChanged, ProjectCreated};

    fn at(time: i64, kind: EventKind) -> Event {
        Event::new(time, Source::Daemon, kind)
    }

    #[test]
    fn projects_are_created_renamed_tagged_deleted_and_numbered() {
        let mut v = Projects::default();
        assert_eq!(v.next_id(), "1");
        assert_eq!(v.by_name("Default").map(|p| p.id), Some("0".into()));
        v.apply(&at(
            10,
            EventKind::ProjectCreated(ProjectCreated {
                project: "1".into(),
                name: "a".into(),
                tags: [("k".to_string(), "v".to_string())].into(),
                artifact_location: None,
                extra: Default::default(),
            }),
        ));
        v.apply(&at(
            20,
            EventKind::ProjectChanged(ProjectChanged {
                project: "1".into(),
                name: Some("b".into()),
                deleted: Some(true),
                set_tags: [("x".to_string(), "y".to_string())].into(),
                removed_tags: vec!["k".into()],
            }),
        ));
        v.apply(&at(
            30,
            EventKind::ProjectChanged(ProjectChanged {
                project: "0".into(),
                name: Some("Main".into()),
                deleted: None,
                set_tags: BTreeMap::new(),
                removed_tags: vec![],
            }),
        ));
        let p = v.get("1").expect("project 1");
        assert_eq!(
            (p.name.as_str(), p.deleted, p.created, p.updated),
            ("b", true, 10, 20)
        );
        assert_eq!(p.tags, [("x".to_string(), "y".to_string())].into());
        assert_eq!(v.by_name("a"), None);
        assert_eq!(v.get("0").map(|p| p.name), Some("Main".into()));
        assert_eq!(
            v.all().iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["0", "1"]
        );
        assert_eq!(v.next_id(), "2");
    }
}
