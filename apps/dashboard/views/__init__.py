"""Server-rendered pages, one module per page family. Login is enforced by LoginRequiredMiddleware; access per
project by the selectors (`common.project_for`)."""
