#!/usr/bin/env Rscript
## Reference numbers for what users do after the fit: R^2 and ICC (performance,
## Nakagawa et al. 2017, plus a hand computation from lme4's VarCorr and the random-effect
## model matrices) and estimated marginal means with contrasts (emmeans).
##
## Run from the repository root:
##     Rscript tests/references/make_after_references.R
## Optional environment variables:
##     MIXEFF_DATA_DIR   folder with the lme4 data sets as CSV (default tests/data/lme4)
##     MIXEFF_REF_ASLR   "keep" to skip the rerun with address-space randomisation off
##
## Writes
##   tests/references/after/r2_icc.json    one entry per model:
##       r_formula, reml, data, performance (r2_nakagawa: R2_conditional, R2_marginal;
##       icc: ICC_adjusted, ICC_unadjusted; NA -> null), insight (get_variance:
##       var.fixed, var.random, var.residual), hand (var_fixed = var(X beta),
##       var_random = sum over VarCorr terms of mean_i z_i' Sigma z_i with z_i from the
##       term's rows of getME(m, "Zt") (getME(m, "Gp")), var_residual = sigma^2, and the R^2 /
##       ICC from them), theta, is_singular_1e5 (insight's rule).
##   tests/references/after/emmeans.json   one entry per case:
##       model, specs, by, at, lmer_df, emmeans (summary(emmeans(...)) columns),
##       contrasts: list of {method (or "custom" with coefficients), adjust, table
##       (summary(..., infer = c(TRUE, TRUE)) columns)}.
## Numbers are written with sprintf("%.17g") (every double reads back exactly).

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(performance)
  library(insight)
  library(emmeans)
  library(jsonlite)
})

script_path <- local({
  a <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f)) normalizePath(f[1]) else NA_character_
})
repo_root <- if (!is.na(script_path)) {
  normalizePath(file.path(dirname(script_path), "..", ".."))
} else {
  normalizePath(".")
}
## lme4's kernels take memory-alignment dependent paths: rerun with ASLR off so that
## reruns give the same files (as the other reference scripts).
if (Sys.getenv("MIXEFF_REF_ASLR") == "" && !is.na(script_path) &&
    nzchar(Sys.which("setarch"))) {
  machine <- Sys.info()[["machine"]]
  ok <- suppressWarnings(system2("setarch", c(machine, "-R", "true"), stdout = FALSE,
                                 stderr = FALSE))
  if (identical(ok, 0L)) {
    Sys.setenv(MIXEFF_REF_ASLR = "off")
    rscript <- shQuote(file.path(R.home("bin"), "Rscript"))
    quit(save = "no", status = system2("setarch", c(machine, "-R", rscript,
                                                    shQuote(script_path))))
  }
}

data_dir <- Sys.getenv("MIXEFF_DATA_DIR", unset = "")
if (!nzchar(data_dir)) data_dir <- file.path(repo_root, "tests", "data", "lme4")
data_dir <- normalizePath(data_dir, mustWork = TRUE)
out_dir <- file.path(repo_root, "tests", "references", "after")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

versions <- list(
  aslr = if (Sys.getenv("MIXEFF_REF_ASLR") == "off") "disabled (setarch -R)" else "enabled",
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest")),
  performance = as.character(packageVersion("performance")),
  insight = as.character(packageVersion("insight")),
  emmeans = as.character(packageVersion("emmeans"))
)

## ------------------------------------------------------------ JSON text --
num_json <- function(x) {
  x <- as.double(x)
  out <- rep("null", length(x))
  ok <- is.finite(x)
  out[ok] <- sprintf("%.17g", x[ok])
  out
}
to_json <- function(x) {
  if (is.null(x)) return("null")
  if (is.data.frame(x)) x <- lapply(as.list(x), function(col) I(as.vector(col)))
  if (is.list(x)) {
    nm <- names(x)
    parts <- vapply(x, to_json, "")
    if (is.null(nm)) return(paste0("[", paste(parts, collapse = ","), "]"))
    keys <- vapply(nm, function(k) toJSON(k, auto_unbox = TRUE), "")
    return(paste0("{", paste(paste0(keys, ":", parts), collapse = ","), "}"))
  }
  scalar <- length(x) == 1 && !inherits(x, "AsIs")
  if (is.factor(x)) x <- as.character(x)
  if (is.logical(x) && !all(is.na(x))) {
    s <- ifelse(is.na(x), "null", ifelse(x, "true", "false"))
  } else if (is.numeric(x) || is.logical(x)) {
    s <- num_json(x)
  } else {
    s <- vapply(as.character(x), function(v) {
      if (is.na(v)) "null" else toJSON(v, auto_unbox = TRUE)
    }, "")
  }
  if (scalar) return(s)
  paste0("[", paste(s, collapse = ","), "]")
}
write_ref <- function(obj, name) {
  path <- file.path(out_dir, paste0(name, ".json"))
  writeLines(prettify(to_json(obj), indent = 1), path, useBytes = TRUE)
  cat(sprintf("  wrote %s\n", path))
}

## ---------------------------------------------------------------- data --
read_data <- function(file, factors) {
  d <- read.csv(file.path(data_dir, file), stringsAsFactors = FALSE)
  for (f in factors) d[[f]] <- factor(d[[f]])
  d
}
sleepstudy <- read_data("sleepstudy.csv", "Subject")
sleepstudy$w <- 1 + (as.integer(sleepstudy$Subject) %% 3) / 2   # as make_references.R
## a factor for the emmeans cases: the second half of the study
sleepstudy$phase <- factor(ifelse(sleepstudy$Days >= 5, "late", "early"))
Dyestuff <- read_data("Dyestuff.csv", "Batch")
Dyestuff2 <- read_data("Dyestuff2.csv", "Batch")
Penicillin <- read_data("Penicillin.csv", c("plate", "sample"))
Pastes <- read_data("Pastes.csv", c("batch", "cask", "sample"))
cake <- read_data("cake.csv", c("replicate", "recipe", "temperature"))
plant <- read.csv(file.path(repo_root, "src", "mixeff", "data", "plant_growth.csv"))
plant$plant_id <- factor(plant$plant_id)
plant$temp <- factor(plant$temp)

fit <- function(formula, data, reml = TRUE, weights = FALSE) {
  f <- as.formula(formula)
  cl <- if (weights) {
    bquote(lmer(.(f), data = .(as.name(data)), REML = .(reml), weights = w))
  } else {
    bquote(lmer(.(f), data = .(as.name(data)), REML = .(reml)))
  }
  suppressMessages(eval(cl))
}

## ------------------------------------------------------------- R^2, ICC --
r2_models <- list(
  list(name = "sleepstudy_reml", formula = "Reaction ~ Days + (Days | Subject)",
       data = "sleepstudy", reml = TRUE),
  list(name = "sleepstudy_ml", formula = "Reaction ~ Days + (Days | Subject)",
       data = "sleepstudy", reml = FALSE),
  list(name = "sleepstudy_intercept_reml", formula = "Reaction ~ Days + (1 | Subject)",
       data = "sleepstudy", reml = TRUE),
  list(name = "sleepstudy_uncorr_reml", formula = "Reaction ~ Days + (Days || Subject)",
       data = "sleepstudy", reml = TRUE),
  list(name = "sleepstudy_slope_only_fixed_intercept",
       formula = "Reaction ~ 1 + (Days | Subject)", data = "sleepstudy", reml = TRUE),
  list(name = "sleepstudy_weights_reml", formula = "Reaction ~ Days + (Days | Subject)",
       data = "sleepstudy", reml = TRUE, weights = TRUE),
  list(name = "dyestuff_reml", formula = "Yield ~ 1 + (1 | Batch)", data = "Dyestuff",
       reml = TRUE),
  list(name = "dyestuff2_reml", formula = "Yield ~ 1 + (1 | Batch)", data = "Dyestuff2",
       reml = TRUE),
  list(name = "penicillin_reml", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
       data = "Penicillin", reml = TRUE),
  list(name = "pastes_reml", formula = "strength ~ 1 + (1 | batch/cask)", data = "Pastes",
       reml = TRUE),
  list(name = "cake_reml", formula = "angle ~ recipe * temperature + (1 | recipe:replicate)",
       data = "cake", reml = TRUE),
  list(name = "plant_reml", formula = "height ~ week * temp + (1 | plant_id)",
       data = "plant", reml = TRUE),
  list(name = "plant_slopes_reml", formula = "height ~ week * temp + (week | plant_id)",
       data = "plant", reml = TRUE)
)

hand_variances <- function(m) {
  X <- getME(m, "X")
  eta <- as.vector(X %*% fixef(m))
  vc <- VarCorr(m)            # in the order of the terms of Zt (getME(m, "cnms"))
  Zt <- getME(m, "Zt")
  Gp <- getME(m, "Gp")
  n <- nrow(X)
  parts <- numeric(length(vc))
  for (i in seq_along(vc)) {
    S <- as.matrix(vc[[i]])
    k <- nrow(S)
    Zi <- Zt[(Gp[i] + 1):Gp[i + 1], , drop = FALSE]   # rows: level-major, k per level
    nlev <- nrow(Zi) / k
    if (nlev == n) next
    big <- kronecker(Diagonal(nlev), S)
    parts[i] <- sum(Zi * (big %*% Zi)) / n            # mean over rows of z_i' S z_i
  }
  vf <- var(eta)
  vr <- sum(parts)
  ve <- sigma(m)^2
  tot <- vf + vr + ve
  list(var_fixed = vf, var_random = vr, var_residual = ve, by_term = I(parts),
       terms = I(names(vc)),
       R2_marginal = vf / tot, R2_conditional = (vf + vr) / tot,
       ICC_adjusted = vr / (vr + ve), ICC_unadjusted = vr / tot)
}

r2_out <- list(versions = versions, models = list())
for (spec in r2_models) {
  m <- fit(spec$formula, spec$data, spec$reml, isTRUE(spec$weights))
  r2 <- suppressWarnings(suppressMessages(capture.output(res <- r2_nakagawa(m))))
  ic <- suppressWarnings(suppressMessages(icc(m)))
  gv <- suppressWarnings(suppressMessages(get_variance(m)))
  theta <- getME(m, "theta")
  entry <- list(
    r_formula = spec$formula, data = spec$data, reml = spec$reml,
    weights = isTRUE(spec$weights),
    theta = I(unname(theta)),
    is_singular_1e5 = any(abs(theta[getME(m, "lower") == 0]) < 1e-5),
    performance = list(
      R2_conditional = unname(res$R2_conditional), R2_marginal = unname(res$R2_marginal),
      ICC_adjusted = if (is.data.frame(ic)) ic$ICC_adjusted else NA,
      ICC_unadjusted = if (is.data.frame(ic)) ic$ICC_unadjusted else NA),
    insight = list(var_fixed = gv$var.fixed,
                   var_random = if (is.null(gv$var.random)) NA else gv$var.random,
                   var_residual = gv$var.residual),
    hand = hand_variances(m)
  )
  r2_out$models[[spec$name]] <- entry
  cat(sprintf("%-40s R2c %s R2m %s\n", spec$name, format(entry$performance$R2_conditional),
              format(entry$performance$R2_marginal)))
}
write_ref(r2_out, "r2_icc")

## ------------------------------------------------------------- emmeans --
emm_models <- list(
  plant = list(formula = "height ~ week * temp + (1 | plant_id)", data = "plant"),
  cake = list(formula = "angle ~ recipe * temperature + (1 | recipe:replicate)",
              data = "cake"),
  sleep = list(formula = "Reaction ~ Days + phase + (Days | Subject)", data = "sleepstudy"),
  plant_log = list(formula = "height ~ log(week + 1) * temp + (1 | plant_id)", data = "plant")
)
fits <- lapply(emm_models, function(s) fit(s$formula, s$data))

std_adjust <- list("tukey", "holm", "bonferroni", "none")
cases <- list(
  list(model = "plant", specs = "temp", by = NULL, at = NULL,
       contrasts = c(lapply(std_adjust, function(a) list(method = "pairwise", adjust = a)),
                     list(list(method = "trt.vs.ctrl", adjust = "dunnettx"),
                          list(method = "trt.vs.ctrl", adjust = "none"),
                          list(method = "custom", adjust = "none",
                               coef = list(hot_vs_cold = c(-1, 0, 1),
                                           mid_vs_ends = c(-0.5, 1, -0.5))),
                          list(method = "custom", adjust = "holm",
                               coef = list(hot_vs_cold = c(-1, 0, 1),
                                           mid_vs_ends = c(-0.5, 1, -0.5)))))),
  list(model = "plant", specs = "temp", by = NULL, at = list(week = 3),
       contrasts = list(list(method = "pairwise", adjust = "tukey"))),
  list(model = "plant", specs = "temp", by = "week", at = list(week = c(0, 3, 7)),
       contrasts = list(list(method = "pairwise", adjust = "tukey"),
                        list(method = "pairwise", adjust = "holm"),
                        list(method = "trt.vs.ctrl", adjust = "bonferroni"))),
  list(model = "cake", specs = "recipe", by = NULL, at = NULL,
       contrasts = list(list(method = "pairwise", adjust = "tukey"),
                        list(method = "pairwise", adjust = "bonferroni"))),
  list(model = "cake", specs = "temperature", by = "recipe", at = NULL,
       contrasts = list(list(method = "pairwise", adjust = "tukey"),
                        list(method = "trt.vs.ctrl", adjust = "dunnettx"))),
  list(model = "cake", specs = c("recipe", "temperature"), by = NULL, at = NULL,
       contrasts = list(list(method = "pairwise", adjust = "none"))),
  list(model = "plant", specs = c("temp", "week"), by = NULL, at = list(week = c(0, 7)),
       contrasts = list(list(method = "pairwise", adjust = "tukey"))),
  list(model = "sleep", specs = "phase", by = NULL, at = NULL,
       contrasts = list(list(method = "pairwise", adjust = "none"))),
  ## the covariate at its mean inside the transformation: log(mean(week) + 1)
  list(model = "plant_log", specs = "temp", by = NULL, at = NULL,
       contrasts = list(list(method = "revpairwise", adjust = "sidak")))
)

frame_of <- function(s) {
  s <- as.data.frame(s)
  out <- lapply(s, function(col) I(if (is.factor(col)) as.character(col) else as.vector(col)))
  out
}

emm_out <- list(versions = versions, models = lapply(emm_models, function(s) s$formula),
                cases = list())
for (cs in cases) {
  m <- fits[[cs$model]]
  for (ddf in c("kenward-roger", "satterthwaite")) {
    form <- if (is.null(cs$by)) {
      as.formula(paste("~", paste(cs$specs, collapse = " * ")))
    } else {
      as.formula(paste("~", paste(cs$specs, collapse = " * "), "|",
                       paste(cs$by, collapse = " * ")))
    }
    args <- list(m, form, lmer.df = ddf)
    if (!is.null(cs$at)) args$at <- cs$at
    e <- suppressMessages(do.call(emmeans, args))
    ctr <- list()
    for (c in cs$contrasts) {
      meth <- if (c$method == "custom") c$coef else c$method
      k <- suppressMessages(contrast(e, method = meth, adjust = c$adjust))
      tab <- summary(k, infer = c(TRUE, TRUE))
      ctr[[length(ctr) + 1]] <- list(method = c$method, adjust = c$adjust,
                                     coef = if (c$method == "custom") c$coef else NULL,
                                     table = frame_of(tab))
    }
    emm_out$cases[[length(emm_out$cases) + 1]] <- list(
      model = cs$model, specs = I(cs$specs), by = if (is.null(cs$by)) NULL else I(cs$by),
      at = cs$at, lmer_df = ddf, emmeans = frame_of(summary(e)), contrasts = ctr)
  }
}
write_ref(emm_out, "emmeans")

## --------------------------------------------------- AIC / BIC of several models --
## AIC(m1, m2, ...) and BIC(...) take each fit's own log-likelihood (REML for REML fits);
## the same after refitting by ML (REML = FALSE), and anova()'s printed text of three
## models with their names.
ic_sets <- list(
  sleep = list(data = "sleepstudy",
               formulas = c(intercept = "Reaction ~ Days + (1 | Subject)",
                            uncorr = "Reaction ~ Days + (Days || Subject)",
                            slope = "Reaction ~ Days + (Days | Subject)")),
  plant = list(data = "plant",
               formulas = c(additive = "height ~ week + temp + (1 | plant_id)",
                            interaction = "height ~ week * temp + (1 | plant_id)"))
)
ic_out <- list(versions = versions, sets = list())
for (nm in names(ic_sets)) {
  st <- ic_sets[[nm]]
  entry <- list(data = st$data, names = I(names(st$formulas)),
                formulas = I(unname(st$formulas)))
  for (reml in c(TRUE, FALSE)) {
    ms <- lapply(st$formulas, function(f) fit(f, st$data, reml))
    a <- do.call(AIC, unname(ms))
    b <- do.call(BIC, unname(ms))
    entry[[if (reml) "reml" else "ml"]] <- list(df = I(a$df), AIC = I(a$AIC), BIC = I(b$BIC),
                                                logLik = I(vapply(ms, function(m)
                                                  as.numeric(logLik(m)), 1)))
  }
  ms <- lapply(st$formulas, function(f) fit(f, st$data, TRUE))
  for (i in seq_along(ms)) assign(names(st$formulas)[i], ms[[i]])
  cl <- as.call(c(as.name("anova"), lapply(names(st$formulas), as.name)))
  entry$anova_text <- I(capture.output(suppressMessages(print(eval(cl)))))
  ic_out$sets[[nm]] <- entry
}
write_ref(ic_out, "model_comparison")

## ------------------------------------------------- lm() as a first-class fit --
## broom's tidy / glance / augment, confint, predict with intervals, hatvalues and
## cooks.distance of two linear models (one weighted).
suppressPackageStartupMessages(library(broom))
lm_cases <- list(
  plant = list(formula = "height ~ week * temp", data = "plant", weights = FALSE,
               newdata = data.frame(week = c(0, 3.5, 7),
                                    temp = factor(c(10, 15, 20), levels = c(10, 15, 20)))),
  sleep_weights = list(formula = "Reaction ~ Days", data = "sleepstudy", weights = TRUE,
                       newdata = data.frame(Days = c(0, 4.5, 9)))
)
lm_out <- list(versions = c(versions, broom = as.character(packageVersion("broom"))),
               cases = list())
for (nm in names(lm_cases)) {
  cs <- lm_cases[[nm]]
  f <- as.formula(cs$formula)
  m <- if (cs$weights) {
    eval(bquote(lm(.(f), data = .(as.name(cs$data)), weights = w)))
  } else {
    eval(bquote(lm(.(f), data = .(as.name(cs$data)))))
  }
  ci <- confint(m)
  aug <- augment(m)
  pc <- predict(m, cs$newdata, interval = "confidence", se.fit = TRUE)
  pp <- predict(m, cs$newdata, interval = "prediction")
  nd <- lapply(cs$newdata, function(col) I(if (is.factor(col)) as.character(col) else col))
  lm_out$cases[[nm]] <- list(
    formula = cs$formula, weights = cs$weights, newdata = nd,
    confint = list(term = I(rownames(ci)), lower = I(ci[, 1]), upper = I(ci[, 2])),
    tidy = frame_of(tidy(m, conf.int = TRUE)),
    glance = frame_of(glance(m)),
    augment = list(.fitted = I(unname(aug$.fitted)), .resid = I(unname(aug$.resid)),
                   .hat = I(unname(aug$.hat)), .sigma = I(unname(aug$.sigma)),
                   .cooksd = I(unname(aug$.cooksd)), .std.resid = I(unname(aug$.std.resid))),
    hatvalues = I(unname(hatvalues(m))), cooks_distance = I(unname(cooks.distance(m))),
    residuals_pearson = I(unname(residuals(m, type = "pearson"))),
    predict_confidence = list(fit = I(unname(pc$fit[, "fit"])), lwr = I(unname(pc$fit[, "lwr"])),
                              upr = I(unname(pc$fit[, "upr"])), se_fit = I(unname(pc$se.fit))),
    predict_prediction = list(fit = I(unname(pp[, "fit"])), lwr = I(unname(pp[, "lwr"])),
                              upr = I(unname(pp[, "upr"])))
  )
}
write_ref(lm_out, "lm")
