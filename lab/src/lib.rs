//! conlab-lab: the lab's experiments over `conlab-core`'s primitives — the experiment contract,
//! parameters, the runner, results and reports, and the experiments, one folder per topic.
//!
//! See ARCHITECTURE.md at the repository root for the map. [`experiment`] is the contract and
//! the runner; [`experiments`] the topic folders and the registry; [`report`] renders results
//! as tables and SVG for the CLI and the page alike. Nothing here touches the DOM or the
//! terminal.

pub mod experiment;
pub mod experiments;
pub mod report;
