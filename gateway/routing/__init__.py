"""Smart order routing and execution algorithms.

`allocation` splits one parent order across venues by marginal all-in cost (pure);
`algos` schedules child orders through it over time.
"""
