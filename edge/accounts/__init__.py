"""Staff accounts, classes, the student roster, sign-in and attendance."""
