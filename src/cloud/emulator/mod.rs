//! Local emulator of the cloud APIs, for tests, benchmarks and the demo.
