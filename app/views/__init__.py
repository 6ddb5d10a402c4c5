"""Panel Viewer classes, one per dashboard tab, over the state objects in nbody_explorer.state."""
