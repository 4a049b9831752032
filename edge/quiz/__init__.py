"""In-class practice and feedback: the question bank, importers, live quiz
sessions graded on the hub, reports and the wrong-answer notebook."""
