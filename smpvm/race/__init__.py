"""Race detection: the checkers' reports, hang forensics, the race
command and the pytest plugin (the users' second job)."""
