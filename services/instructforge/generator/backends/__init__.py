"""One adapter per provider library, all behind `instructforge.generator.backends.base.Backend`."""
