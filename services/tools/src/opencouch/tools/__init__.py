"""The tools service: therapy skills, grounded lookup, crisis resources and guided exercises."""
