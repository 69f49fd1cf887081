//! Sandboxes for AI agents (issue 15): what an agent box may reach
//! (`egress`). Limits, checkpoints, idle stop and the agent-facing
//! interface come next.

pub mod egress;
pub mod lifetime;
pub mod sandbox;
