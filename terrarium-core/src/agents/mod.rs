//! Sandboxes for AI agents (issue 15): what an agent box may reach
//! (`egress`, `sandbox`), when it stops or goes (`lifetime`), and the
//! interface an agent drives it through (`mcp`).

pub mod egress;
pub mod lifetime;
pub mod mcp;
pub mod sandbox;
