//! threads & GIL: CPython's threads under the GIL, modelled bytecode by bytecode, and the models beside them.

use crate::experiment::Experiment;

mod gil_convoy;
mod gil_cpu;
mod gil_race;
mod models_matrix;
mod switch_interval;

/// The topic's name, as the catalogue groups it.
pub const NAME: &str = "threads & GIL";

/// The topic's experiments, in catalogue order.
pub const EXPERIMENTS: &[&dyn Experiment] = &[
    &gil_cpu::GilCpu,
    &gil_race::GilRace,
    &gil_convoy::GilConvoy,
    &switch_interval::SwitchInterval,
    &models_matrix::ModelsMatrix,
];
