"""Pure-torch sCM core: TrigFlow, the JVP tangent, losses, weighting, samplers, EMA."""
