//! The projects the fake GitLab knows (numeric ids from 101, full paths found case-insensitively
//! as GitLab does), their issues and files, and bare git repositories made for them.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use actix_web::web::Bytes;
use rand::RngCore;
use serde_json::{Value, json};

use super::FakeGitLab;

/// Every fake project's runner registration token, as GitLab shows it to maintainers.
pub(crate) const RUNNERS_TOKEN: &str = "GR1348941fake-runner-registration";

/// How many issues each project starts with: enough for a few pages.
pub(super) const SEEDED_ISSUES: u64 = 5;

#[derive(Default)]
pub(super) struct Projects(Vec<Project>);

pub(super) struct Project {
    pub id: u64,
    pub path_with_namespace: String,
    pub issues: Vec<Value>,
    pub files: HashMap<String, Bytes>,
    /// Paths the project had before it was moved: GitLab still finds it there (redirect routes).
    pub old_paths: Vec<String>,
}

impl Projects {
    /// The project at `path`, made now if GitLab does not know it yet; its id.
    pub(super) fn add(&mut self, path: &str) -> u64 {
        if let Some(project) = self
            .0
            .iter()
            .find(|p| p.path_with_namespace.eq_ignore_ascii_case(path))
        {
            return project.id;
        }
        // A new project takes over an old path: the redirect ends.
        for project in &mut self.0 {
            project.old_paths.retain(|p| !p.eq_ignore_ascii_case(path));
        }
        let id = 101 + self.0.len() as u64;
        let issues = (1..=SEEDED_ISSUES)
            .map(|iid| issue(id, iid, &format!("Issue {iid}"), ""))
            .collect();
        self.0.push(Project {
            id,
            path_with_namespace: path.to_owned(),
            issues,
            files: HashMap::new(),
            old_paths: Vec::new(),
        });
        id
    }

    /// By numeric id, or by full path compared case-insensitively (GitLab's `find_by_full_path`).
    pub(super) fn find(&self, id_or_path: &str) -> Option<&Project> {
        self.0.iter().find(|p| p.matches(id_or_path))
    }

    pub(super) fn find_mut(&mut self, id_or_path: &str) -> Option<&mut Project> {
        self.0.iter_mut().find(|p| p.matches(id_or_path))
    }

    /// Where the repository addressed as `path` lives now (GitLab follows old paths).
    pub(super) fn current_path(&self, path: &str) -> Option<String> {
        self.find(path)
            .filter(|_| path.parse::<u64>().is_err())
            .map(|p| p.path_with_namespace.clone())
    }

    pub(super) fn all(&self) -> &[Project] {
        &self.0
    }
}

impl Project {
    fn matches(&self, id_or_path: &str) -> bool {
        match id_or_path.parse::<u64>() {
            Ok(id) => self.id == id,
            Err(_) => {
                self.path_with_namespace.eq_ignore_ascii_case(id_or_path)
                    || self
                        .old_paths
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(id_or_path))
            }
        }
    }

    /// The project as `GET /projects/:id` describes it.
    pub(super) fn json(&self, base_url: &str) -> Value {
        let (namespace, name) = self
            .path_with_namespace
            .rsplit_once('/')
            .unwrap_or(("", &self.path_with_namespace));
        json!({
            "id": self.id,
            "name": name,
            "path": name,
            "path_with_namespace": self.path_with_namespace,
            "name_with_namespace": self.path_with_namespace.replace('/', " / "),
            "namespace": {"full_path": namespace},
            "default_branch": "main",
            "visibility": "private",
            "web_url": format!("{base_url}/{}", self.path_with_namespace),
            "http_url_to_repo": format!("{base_url}/{}.git", self.path_with_namespace),
            // GitLab shows project maintainers the runner registration token.
            "runners_token": RUNNERS_TOKEN,
        })
    }

    /// Adds an issue with the next iid; returns it.
    pub(super) fn open_issue(&mut self, title: &str, description: &str) -> Value {
        let iid = self.issues.len() as u64 + 1;
        let created = issue(self.id, iid, title, description);
        self.issues.push(created.clone());
        created
    }
}

fn issue(project_id: u64, iid: u64, title: &str, description: &str) -> Value {
    json!({
        "id": project_id * 1000 + iid,
        "iid": iid,
        "project_id": project_id,
        "title": title,
        "description": description,
        "state": "opened",
    })
}

/// Tests and the benchmark include this module alike; only tests make repositories.
#[allow(dead_code)]
impl FakeGitLab {
    /// A project GitLab knows (no repository); its id.
    pub(crate) fn add_project(&self, path: &str) -> u64 {
        self.state.lock().unwrap().projects.add(path)
    }

    /// A file of `project`'s default branch, for `repository/files/:path/raw`.
    pub(crate) fn add_file(&self, project: &str, path: &str, content: Vec<u8>) {
        let mut state = self.state.lock().unwrap();
        let project = state.projects.find_mut(project).expect("a known project");
        project.files.insert(path.to_owned(), Bytes::from(content));
    }

    /// The issues `project` holds now, oldest first.
    pub(crate) fn issues(&self, project: &str) -> Vec<Value> {
        let state = self.state.lock().unwrap();
        state
            .projects
            .find(project)
            .expect("a known project")
            .issues
            .clone()
    }

    /// The directory bare repositories live in, made on first use unless `serve_git` named one.
    fn git_root(&self) -> std::path::PathBuf {
        let mut state = self.state.lock().unwrap();
        if state.git_root.is_none() {
            let dir = tempfile::tempdir().unwrap();
            state.git_root = Some(dir.path().to_owned());
            state.git_dir = Some(dir);
        }
        state.git_root.clone().unwrap()
    }

    /// A project with a bare repository `{path}.git`: one commit on `main` with `README.md`
    /// saying "hello from GitLab". Returns the project's id.
    pub(crate) fn create_repository(&self, path: &str) -> u64 {
        self.create_repository_with(path, &[("README.md", b"hello from GitLab\n".to_vec())])
    }

    /// `create_repository`, with a file `big.bin` of `megabytes` random (incompressible) bytes.
    pub(crate) fn create_big_repository(&self, path: &str, megabytes: usize) -> u64 {
        let mut big = vec![0u8; megabytes << 20];
        rand::thread_rng().fill_bytes(&mut big);
        self.create_repository_with(
            path,
            &[
                ("README.md", b"hello from GitLab\n".to_vec()),
                ("big.bin", big),
            ],
        )
    }

    fn create_repository_with(&self, path: &str, files: &[(&str, Vec<u8>)]) -> u64 {
        let root = self.git_root();
        let bare = root.join(format!("{path}.git"));
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        let work = tempfile::tempdir().unwrap();
        git(
            &root,
            &["init", "--quiet", "--bare", &format!("{path}.git")],
        );
        git(work.path(), &["init", "--quiet", "."]);
        for (name, content) in files {
            std::fs::write(work.path().join(name), content).unwrap();
            git(work.path(), &["add", name]);
        }
        git(work.path(), &["commit", "--quiet", "-m", "first"]);
        let target = bare.display().to_string();
        git(
            work.path(),
            &["push", "--quiet", &target, "HEAD:refs/heads/main"],
        );
        git(&bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
        self.add_project(path)
    }

    /// Moves (renames or transfers) a project, repository included, as GitLab does: the old
    /// path keeps leading to it, through the API and git alike, until a new project takes it.
    pub(crate) fn move_project(&self, from: &str, to: &str) {
        let root = self.git_root();
        let mut state = self.state.lock().unwrap();
        let project = state.projects.find_mut(from).expect("a known project");
        project.old_paths.push(project.path_with_namespace.clone());
        project.path_with_namespace = to.to_owned();
        let old = root.join(format!("{from}.git"));
        if old.exists() {
            let new = root.join(format!("{to}.git"));
            std::fs::create_dir_all(new.parent().unwrap()).unwrap();
            std::fs::rename(old, new).unwrap();
        }
    }

    /// The commit `branch` points at in `{path}.git`, if the branch exists.
    pub(crate) fn head(&self, path: &str, branch: &str) -> Option<String> {
        let bare = self.git_root().join(format!("{path}.git"));
        let output = Command::new("git")
            .current_dir(&bare)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args(["rev-parse", "--verify", "--quiet"])
            .arg(format!("refs/heads/{branch}"))
            .output()
            .unwrap();
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// Runs git in `dir` as Alice, with no system or global configuration.
fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args([
            "-c",
            "user.name=Alice",
            "-c",
            "user.email=alice@corp.example",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?} in {}", dir.display());
}
