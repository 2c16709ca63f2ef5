"""One module per chapter: configs per profile and functions that run one experiment."""
