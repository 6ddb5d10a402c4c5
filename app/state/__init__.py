"""Session state of each dashboard tab: plain param.Parameterized classes, no Panel import."""
