//! One place for what tests and benchmarks share: the control plane, launching the emulator and
//! the operator, free ports, provider manifests, CRD installation, a signed test client of the
//! emulator, an in-process driver over the emulator's model, and fixtures.

pub mod aliyun_client;
