"""Pure domain logic: portfolio model, drift, triggers, trade optimisation, tax lots. No I/O."""
