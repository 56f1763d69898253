//! One place for what tests and benchmarks share: the control plane, launching the emulator and
//! the operator, free ports, provider manifests, CRD installation, a signed test client of the
//! emulator, an in-process driver over the emulator's model, and fixtures.

pub mod aliyun_client;
pub mod conformance;
pub mod control_plane;
pub mod crds;
pub mod dry_provider;
pub mod emulator;
pub mod fixtures;
pub mod manifests;
pub mod model_driver;
pub mod namespace;
pub mod operator;
pub mod operator_env;
pub mod paths;
pub mod process;
pub mod status;
pub mod wait;

/// What operator tests use, in one import.
pub mod prelude {
    pub use crate::emulator::{
        by_id, count, effective_calls, group_ports, group_rule_ids, items, tag,
    };
    pub use crate::manifests::*;
    pub use crate::operator_env::*;
    pub use crate::status::{condition, is_ready};
    pub use crate::wait::{tail, wait_for};
}
