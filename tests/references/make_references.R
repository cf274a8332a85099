#!/usr/bin/env Rscript
## Reference numbers from R's lme4 / lmerTest / pbkrtest for the mixeff test suite.
##
## Run from the repository root:
##     Rscript tests/references/make_references.R
## Optional environment variables:
##     MIXEFF_DATA_DIR   folder with the lme4 data sets as CSV (default ../shared/data,
##                       relative to the repository root)
##     MIXEFF_REF_ONLY   comma-separated model names: regenerate only these files
##                       ("comparisons" and "lm_plant" name the two extra files)
##
## Writes one JSON file per model into tests/references/lme4/<name>.json plus
## comparisons.json (likelihood-ratio tests via anova(m1, m2)) and lm_plant.json
## (the naive lm() fit of the plant data).  The key layout is described in
## tests/references/README.md.
##
## Numbers are written with 17 significant digits (sprintf "%.17g"), which reads
## back to the identical double, so nothing is lost.  (jsonlite's own digits = NA
## keeps only 15 significant digits, which is not enough.)

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(pbkrtest)
  library(jsonlite)
})

## ---------------------------------------------------------------- paths --
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
## Bit-for-bit reproducibility: lme4's Eigen kernels (and OpenBLAS) take code paths that
## depend on the memory alignment of their arrays, so with address-space layout
## randomisation two runs of the same fit can differ in the last digits (observed:
## Penicillin theta ~2e-11 relative, profile CIs ~1e-7 relative).  Re-run this script
## once under `setarch -R` (ASLR off), which makes reruns reproduce the files byte for
## byte on a given machine.  Set MIXEFF_REF_ASLR=keep to skip this.
if (Sys.getenv("MIXEFF_REF_ASLR") == "" && !is.na(script_path) && nzchar(Sys.which("setarch"))) {
  arch <- Sys.info()[["machine"]]
  if (identical(suppressWarnings(system2("setarch", c(arch, "-R", "true"),
                                         stdout = FALSE, stderr = FALSE)), 0L)) {
    Sys.setenv(MIXEFF_REF_ASLR = "off")
    status <- system2("setarch", c(arch, "-R", shQuote(file.path(R.home("bin"), "Rscript")),
                                   shQuote(script_path)))
    quit(save = "no", status = status)
  }
}
aslr_state <- if (Sys.getenv("MIXEFF_REF_ASLR") == "off") "disabled (setarch -R)" else "enabled"

data_dir <- Sys.getenv("MIXEFF_DATA_DIR", unset = "")
if (!nzchar(data_dir)) data_dir <- file.path(repo_root, "..", "shared", "data")
data_dir <- normalizePath(data_dir, mustWork = TRUE)
plant_file <- file.path(repo_root, "src", "mixeff", "data", "plant_growth.csv")
out_dir <- file.path(repo_root, "tests", "references", "lme4")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

only <- Sys.getenv("MIXEFF_REF_ONLY", unset = "")
only <- if (nzchar(only)) trimws(strsplit(only, ",")[[1]]) else character(0)
wanted <- function(name) length(only) == 0 || name %in% only

versions <- list(
  R = paste(R.version$major, R.version$minor, sep = "."),
  R_version_string = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest")),
  Matrix = as.character(packageVersion("Matrix")),
  nloptr = as.character(packageVersion("nloptr")),
  jsonlite = as.character(packageVersion("jsonlite")),
  blas = tryCatch(sessionInfo()$BLAS, error = function(e) NULL),
  lapack = tryCatch(sessionInfo()$LAPACK, error = function(e) NULL),
  aslr = aslr_state
)

## ------------------------------------------------------ number writing --
## Every finite double is written with sprintf("%.17g"): glibc's printf is exact, and
## 17 significant digits always read back (in Python, or any correctly rounding
## parser) to the identical double.  A "shortest representation" via R's own
## as.numeric() round trip is NOT safe: R's strtod is not correctly rounded (about
## 1 in 10^4 of 16-digit strings come back 1 ulp off), so it is not used.
## NA / NaN / Inf are written as null.
fmt_num <- function(x) {
  out <- rep("null", length(x))
  ok <- is.finite(x)
  if (any(ok)) out[ok] <- sprintf("%.17g", as.double(x[ok]))
  out
}

verbatim <- function(s) structure(s, class = "json")

## Walk a nested list; turn doubles into verbatim JSON text.  Length-1 vectors
## become scalars unless wrapped in I() (then they stay arrays).
prep <- function(x) {
  if (is.null(x)) return(NULL)
  if (is.list(x) && !is.data.frame(x)) {
    nm <- names(x)
    y <- lapply(x, prep)
    names(y) <- nm
    return(y)
  }
  if (is.data.frame(x)) stop("prep(): convert data frames with df_rows() first")
  if (is.factor(x)) x <- as.character(x)
  asis <- inherits(x, "AsIs")
  if (asis) class(x) <- setdiff(class(x), "AsIs")
  if (is.double(x)) {
    x <- as.vector(x)
    s <- fmt_num(x)
    if (length(x) == 1 && !asis) return(verbatim(s))
    return(verbatim(paste0("[", paste(s, collapse = ","), "]")))
  }
  if (is.atomic(x)) {
    x <- as.vector(x)
    if (length(x) == 1 && !asis) return(x)
    return(I(x))
  }
  x
}

write_ref <- function(obj, name) {
  path <- file.path(out_dir, paste0(name, ".json"))
  txt <- toJSON(prep(obj), auto_unbox = TRUE, null = "null", na = "null",
                json_verbatim = TRUE, pretty = FALSE, digits = NA)
  txt <- prettify(txt, indent = 1)
  writeLines(txt, path, useBytes = TRUE)
  cat(sprintf("  wrote %s (%.0f kB)\n", path, file.info(path)$size / 1024))
  invisible(path)
}

## ---------------------------------------------------------- converters --
num_vec <- function(x) I(unname(as.numeric(x)))
chr_vec <- function(x) I(unname(as.character(x)))

## Matrix -> list of rows (each a numeric array).
mat_rows <- function(M) {
  M <- as.matrix(M)
  lapply(seq_len(nrow(M)), function(i) num_vec(M[i, ]))
}

## Data frame / matrix with row names -> list of row objects
## {key: rowname, <column name>: value, ...}; NA -> null.
df_rows <- function(x, key = "term") {
  if (is.null(x)) return(NULL)
  rn <- rownames(x)
  x <- as.data.frame(x, check.names = FALSE, stringsAsFactors = FALSE)
  if (nrow(x) == 0) return(list())
  lapply(seq_len(nrow(x)), function(i) {
    r <- list()
    if (!is.null(key)) r[[key]] <- rn[i]
    for (cn in names(x)) {
      v <- x[[cn]][i]
      if (is.factor(v)) v <- as.character(v)
      r[[cn]] <- v
    }
    r
  })
}

named_list <- function(x) {
  nm <- names(x)
  l <- as.list(unname(x))
  names(l) <- nm
  l
}

capture_text <- function(expr) paste(capture.output(expr), collapse = "\n")

## ------------------------------------------------ guarded evaluation --
## Every optional step runs through step(): warnings and messages are recorded
## (and muffled), errors give NULL and are recorded, the time is recorded.
new_log <- function() {
  e <- new.env()
  e$warnings <- list()
  e$errors <- list()
  e$timings <- list()
  e
}

step <- function(log, label, expr) {
  msgs <- character(0)
  t0 <- proc.time()[["elapsed"]]
  val <- tryCatch(
    withCallingHandlers(expr,
      warning = function(w) {
        msgs <<- c(msgs, paste0("warning: ", conditionMessage(w)))
        invokeRestart("muffleWarning")
      },
      message = function(m) {
        msgs <<- c(msgs, paste0("message: ", sub("\n$", "", conditionMessage(m))))
        invokeRestart("muffleMessage")
      }),
    error = function(e) {
      log$errors[[label]] <- conditionMessage(e)
      cat(sprintf("    [%s] ERROR: %s\n", label, conditionMessage(e)))
      NULL
    })
  log$timings[[label]] <- round(proc.time()[["elapsed"]] - t0, 3)
  if (length(msgs)) {
    log$warnings[[label]] <- I(msgs)
    cat(sprintf("    [%s] %s\n", label, msgs), sep = "")
  }
  val
}

## ---------------------------------------------------------------- data --
read_data <- function(file, factors, ordered_false = character(0)) {
  path <- if (file == "plant_growth.csv") plant_file else file.path(data_dir, file)
  d <- read.csv(path)
  for (f in factors) {
    d[[f]] <- if (f %in% ordered_false) factor(d[[f]], ordered = FALSE) else factor(d[[f]])
  }
  d
}

datasets <- list(
  sleepstudy = list(file = "sleepstudy.csv", factors = "Subject"),
  Dyestuff = list(file = "Dyestuff.csv", factors = "Batch"),
  Dyestuff2 = list(file = "Dyestuff2.csv", factors = "Batch"),
  Penicillin = list(file = "Penicillin.csv", factors = c("plate", "sample")),
  Pastes = list(file = "Pastes.csv", factors = c("batch", "cask", "sample")),
  cake = list(file = "cake.csv", factors = c("replicate", "recipe", "temperature")),
  InstEval = list(file = "InstEval.csv",
                  factors = c("s", "d", "studage", "lectage", "service", "dept")),
  plant = list(file = "plant_growth.csv", factors = c("plant_id", "temp"))
)

load_dataset <- function(key) {
  ds <- datasets[[key]]
  d <- read_data(ds$file, ds$factors)
  if (key == "sleepstudy") {
    ## deterministic weights for sleepstudy_weights_reml (R's 1-based level codes)
    d$w <- 1 + (as.integer(d$Subject) %% 3) / 2
  }
  d
}

## -------------------------------------------------------------- models --
models <- list(
  list(name = "sleepstudy_reml", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days | Subject)", reml = TRUE),
  list(name = "sleepstudy_ml", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days | Subject)", reml = FALSE),
  list(name = "sleepstudy_uncorr_reml", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days || Subject)", reml = TRUE),
  list(name = "sleepstudy_intercept_reml", data = "sleepstudy",
       formula = "Reaction ~ Days + (1 | Subject)", reml = TRUE),
  list(name = "dyestuff_reml", data = "Dyestuff",
       formula = "Yield ~ 1 + (1 | Batch)", reml = TRUE),
  list(name = "dyestuff2_reml", data = "Dyestuff2",
       formula = "Yield ~ 1 + (1 | Batch)", reml = TRUE),
  list(name = "penicillin_reml", data = "Penicillin",
       formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = TRUE),
  list(name = "penicillin_ml", data = "Penicillin",
       formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = FALSE),
  list(name = "pastes_reml", data = "Pastes",
       formula = "strength ~ 1 + (1 | batch/cask)", reml = TRUE),
  list(name = "cake_reml", data = "cake",
       formula = "angle ~ recipe * temperature + (1 | recipe:replicate)", reml = TRUE),
  list(name = "insteval_reml", data = "InstEval",
       formula = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", reml = TRUE,
       big = TRUE),
  list(name = "plant_reml", data = "plant",
       formula = "height ~ week * temp + (1 | plant_id)", reml = TRUE),
  list(name = "plant_ml", data = "plant",
       formula = "height ~ week * temp + (1 | plant_id)", reml = FALSE),
  list(name = "plant_slopes_reml", data = "plant",
       formula = "height ~ week * temp + (week | plant_id)", reml = TRUE),
  list(name = "sleepstudy_weights_reml", data = "sleepstudy",
       formula = "Reaction ~ Days + (Days | Subject)", reml = TRUE, weights = TRUE),
  list(name = "sleepstudy_offset_reml", data = "sleepstudy",
       formula = "Reaction ~ Days + (1 | Subject) + offset(0.5 * Days)", reml = TRUE,
       offset_rule = "0.5 * Days")
)

WEIGHTS_RULE <- paste(
  "w <- 1 + (as.integer(Subject) %% 3) / 2, where as.integer(Subject) is R's 1-based",
  "level code of factor(Subject) (levels sorted numerically: 308 -> 1, 309 -> 2, ...,",
  "372 -> 18); i.e. with 0-based codes c: w = 1 + ((c + 1) %% 3) / 2")

## The data go into the global environment under their R name and the lmer call is
## evaluated there with the formula written out, so that the printed summary shows
## "Formula: Reaction ~ Days + (Days | Subject)" and "Data: sleepstudy", and so that
## refits (ranova, which evaluates lm()/update() calls in the caller's frame; profile;
## anova refit) find *these* data -- not lme4's own lazy-loaded copies of the same name
## (lme4's cake has an ordered temperature, for instance).
fit_model <- function(spec, d) {
  e <- globalenv()
  assign(spec$data, d, envir = e)
  f <- as.formula(spec$formula, env = e)
  cl <- if (isTRUE(spec$weights)) {
    bquote(lmer(.(f), data = .(as.name(spec$data)), REML = .(spec$reml), weights = w))
  } else {
    bquote(lmer(.(f), data = .(as.name(spec$data)), REML = .(spec$reml)))
  }
  eval(cl, envir = e)
}

## ------------------------------------------------------------ extracts --
ranef_info <- function(m) {
  re <- ranef(m, condVar = TRUE)
  out <- list()
  for (g in names(re)) {
    df <- re[[g]]
    k <- ncol(df)
    n <- nrow(df)
    pv <- attr(df, "postVar")
    ## Several terms with the same grouping factor (e.g. (Days || Subject)):
    ## postVar is a list of per-term arrays; assemble the block-diagonal k x k.
    if (is.list(pv)) {
      full <- array(0, c(k, k, n))
      pos <- 0
      for (a in pv) {
        kk <- dim(a)[1]
        idx <- pos + seq_len(kk)
        full[idx, idx, ] <- a
        pos <- pos + kk
      }
      pv_blocks <- lapply(pv, function(a) dim(a)[1])
      pv <- full
      condvar_note <- paste("block-diagonal assembly of per-term postVar arrays, block sizes",
                            paste(unlist(pv_blocks), collapse = ", "))
    } else {
      condvar_note <- NULL
    }
    condvar <- lapply(seq_len(n), function(j) mat_rows(matrix(pv[, , j], k, k)))
    out[[g]] <- list(
      levels = chr_vec(rownames(df)),
      columns = chr_vec(colnames(df)),
      values = mat_rows(as.matrix(df)),
      condvar = condvar,
      condvar_note = condvar_note
    )
  }
  out
}

anova_rows <- function(a) if (is.null(a)) NULL else df_rows(a, "term")

process_model <- function(spec, d) {
  name <- spec$name
  big <- isTRUE(spec$big)
  log <- new_log()
  cat(sprintf("== %s: %s (REML=%s)\n", name, spec$formula, spec$reml))

  m <- step(log, "fit", fit_model(spec, d))
  if (is.null(m)) stop("fit failed for ", name)
  fit_warnings <- log$warnings[["fit"]]
  log$warnings[["fit"]] <- NULL

  ds <- datasets[[spec$data]]
  res <- list(
    name = name,
    data_file = ds$file,
    data_path = if (ds$file == "plant_growth.csv") "src/mixeff/data/plant_growth.csv" else NULL,
    r_formula = spec$formula,
    reml = spec$reml,
    factors = chr_vec(ds$factors),
    factor_levels = lapply(setNames(ds$factors, ds$factors), function(f) chr_vec(levels(d[[f]]))),
    r_call = paste0("lmerTest::lmer(", spec$formula, ", data = ", spec$data,
                    ", REML = ", spec$reml,
                    if (isTRUE(spec$weights)) ", weights = w" else "", ")")
  )
  if (isTRUE(spec$weights)) {
    res$weights_rule <- WEIGHTS_RULE
    res$weights <- num_vec(d$w)
  }
  if (!is.null(spec$offset_rule)) {
    res$offset_rule <- spec$offset_rule
    res$offset <- num_vec(getME(m, "offset"))
  }
  res$nobs <- nobs(m)
  res$ngroups <- named_list(as.list(ngrps(m)))
  res$versions <- versions
  res$class <- class(m)[1]

  ## ---- likelihood, parameters
  cmp <- getME(m, "devcomp")$cmp
  if (spec$reml) {
    res$objective <- unname(cmp["REML"])
    res$objective_type <- "REML criterion (devcomp$cmp['REML'])"
  } else {
    res$objective <- deviance(m)
    res$objective_type <- "deviance (deviance(m))"
  }
  ll <- logLik(m)
  res$loglik <- as.numeric(ll)
  res$loglik_df <- attr(ll, "df")
  res$aic <- AIC(m)
  res$bic <- BIC(m)
  res$deviance_ml_at_fit <- step(log, "deviance_ml_at_fit", deviance(m, REML = FALSE))
  res$devcomp_cmp <- named_list(cmp)
  res$devcomp_dims <- named_list(getME(m, "devcomp")$dims)
  res$sigma <- sigma(m)
  th <- getME(m, "theta")
  res$theta <- num_vec(th)
  res$theta_names <- chr_vec(names(th))
  res$theta_lower <- num_vec(getME(m, "lower"))
  res$is_singular <- isSingular(m)
  res$n_evaluations <- m@optinfo$feval
  res$optimizer <- m@optinfo$optimizer
  res$optimizer_message <- m@optinfo$message
  res$convergence_code <- m@optinfo$conv$opt
  res$convergence_messages <- if (is.null(m@optinfo$conv$lme4$messages)) NULL else
    chr_vec(m@optinfo$conv$lme4$messages)
  res$optinfo_warnings <- if (length(m@optinfo$warnings)) chr_vec(unlist(m@optinfo$warnings)) else NULL

  ## ---- fixed effects
  fe <- fixef(m)
  res$fixef_names <- chr_vec(names(fe))
  res$fixef <- num_vec(fe)
  V <- as.matrix(vcov(m))
  res$vcov <- mat_rows(V)
  res$std_errors <- num_vec(sqrt(diag(V)))

  ## ---- variance components
  vc <- as.data.frame(VarCorr(m))
  res$varcorr <- df_rows(vc, key = NULL)

  ## ---- random effects
  res$ranef <- step(log, "ranef", ranef_info(m))

  ## ---- fitted values, residuals
  fv <- fitted(m)
  rs <- residuals(m)
  res$n_fitted <- length(fv)
  if (big) {
    res$fitted <- num_vec(head(fv, 20))
    res$residuals <- num_vec(head(rs, 20))
    res$fitted_truncated <- TRUE
  } else {
    res$fitted <- num_vec(fv)
    res$residuals <- num_vec(rs)
    res$fitted_truncated <- FALSE
  }
  q <- quantile(residuals(m, type = "pearson", scaled = TRUE))
  res$scaled_residual_quantiles <- list(Min = q[[1]], `1Q` = q[[2]], Median = q[[3]],
                                        `3Q` = q[[4]], Max = q[[5]])

  ## ---- printed output
  res$summary_text <- step(log, "summary_text", capture_text(print(summary(m))))
  res$anova_text <- step(log, "anova_text", capture_text(print(anova(m))))

  ## ---- lmerTest inference
  res$coef_table <- step(log, "coef_table", df_rows(summary(m)$coefficients))
  res$anova <- list(
    type1_satterthwaite = step(log, "anova_type1_satterthwaite",
                               anova_rows(anova(m, type = 1, ddf = "Satterthwaite"))),
    type2_satterthwaite = step(log, "anova_type2_satterthwaite",
                               anova_rows(anova(m, type = 2, ddf = "Satterthwaite"))),
    type3_satterthwaite = step(log, "anova_type3_satterthwaite",
                               anova_rows(anova(m, type = 3, ddf = "Satterthwaite"))),
    type3_kenward_roger = if (big) NULL else
      step(log, "anova_type3_kenward_roger",
           anova_rows(anova(m, type = 3, ddf = "Kenward-Roger")))
  )
  res$ranova <- step(log, "ranova", df_rows(ranova(m)))
  res$ranova_text <- step(log, "ranova_text", capture_text(print(ranova(m))))
  res$confint_wald <- step(log, "confint_wald", df_rows(confint(m, method = "Wald")))
  res$confint_profile <- if (big) NULL else
    step(log, "confint_profile", df_rows(confint(m, method = "profile")))
  if (!big) {
    kr_v <- step(log, "kr_vcov", as.matrix(pbkrtest::vcovAdj(m)))
    res$kr_vcov <- if (is.null(kr_v)) NULL else mat_rows(kr_v)
    res$kr_coef_table <- step(log, "kr_coef_table",
                              df_rows(summary(m, ddf = "Kenward-Roger")$coefficients))
    if (!spec$reml) {
      res$kr_note <- paste(
        "ML fit: pbkrtest::vcovAdj() silently refits the model by REML, so kr_vcov is the",
        "Kenward-Roger adjusted vcov of the REML refit; lmerTest refuses Kenward-Roger for",
        "ML fits, so kr_coef_table and anova.type3_kenward_roger are null (see errors)")
    }
  } else {
    res$kr_vcov <- NULL
    res$kr_coef_table <- NULL
  }
  res$skipped <- if (big) chr_vec(c("anova.type3_kenward_roger", "confint_profile",
                                    "kr_vcov", "kr_coef_table",
                                    "fitted/residuals beyond the first 20")) else NULL

  res$warnings <- if (is.null(fit_warnings)) I(character(0)) else fit_warnings
  res$aux_warnings <- if (length(log$warnings)) as.list(log$warnings) else NULL
  res$errors <- if (length(log$errors)) as.list(log$errors) else NULL
  res$generated_by <- "tests/references/make_references.R"

  ## `res$x <- NULL` drops a key; make sure every optional key is present (as null).
  for (k in c("deviance_ml_at_fit", "convergence_messages", "optinfo_warnings", "ranef",
              "summary_text", "anova_text", "coef_table", "ranova", "ranova_text",
              "confint_wald", "confint_profile", "kr_vcov", "kr_coef_table", "skipped",
              "aux_warnings", "errors")) {
    if (!(k %in% names(res))) res[k] <- list(NULL)
  }

  write_ref(res, name)
  list(model = m, summary = data.frame(
    model = name, objective = res$objective, n_evaluations = res$n_evaluations,
    is_singular = res$is_singular, n_warnings = length(fit_warnings),
    n_errors = length(log$errors), seconds = sum(unlist(log$timings)),
    stringsAsFactors = FALSE))
}

## ---------------------------------------------------------------- run --
data_cache <- list()
get_data <- function(key) {
  if (is.null(data_cache[[key]])) data_cache[[key]] <<- load_dataset(key)
  data_cache[[key]]
}

fits <- list()
table_rows <- list()
for (spec in models) {
  if (!wanted(spec$name)) next
  out <- process_model(spec, get_data(spec$data))
  fits[[spec$name]] <- out$model
  table_rows[[spec$name]] <- out$summary
}

## ------------------------------------------------- model comparisons --
compare <- function(log, label, m_small, m_big, refit, small_formula, big_formula, data_key) {
  a <- step(log, label, anova(m_small, m_big, refit = refit))
  txt <- step(log, paste0(label, "_text"),
              capture_text(print(anova(m_small, m_big, refit = refit))))
  list(
    label = label,
    small_formula = small_formula,
    big_formula = big_formula,
    data = data_key,
    small_reml = isREML(m_small),
    big_reml = isREML(m_big),
    refit = refit,
    refitted = refit && (isREML(m_small) || isREML(m_big)),
    r_call = paste0("anova(m_small, m_big, refit = ", refit, ")"),
    table = if (is.null(a)) NULL else df_rows(a, key = "model"),
    heading = if (is.null(a)) NULL else chr_vec(attr(a, "heading")),
    text = txt,
    warnings = log$warnings[[label]]
  )
}

if (wanted("comparisons")) {
  cat("== comparisons\n")
  log <- new_log()
  sleepstudy <- get_data("sleepstudy")
  plant <- get_data("plant")
  ## Fit the models here (not reusing the loop) so the script works with MIXEFF_REF_ONLY.
  m_small <- step(log, "fit_sleep_int", lmer(Reaction ~ Days + (1 | Subject), sleepstudy))
  m_big <- step(log, "fit_sleep_slope", lmer(Reaction ~ Days + (Days | Subject), sleepstudy))
  c1 <- compare(log, "sleepstudy_intercept_vs_slope", m_small, m_big, TRUE,
                "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)",
                "sleepstudy")
  m_small <- step(log, "fit_plant_additive", lmer(height ~ week + temp + (1 | plant_id), plant))
  m_big <- step(log, "fit_plant_interaction", lmer(height ~ week * temp + (1 | plant_id), plant))
  c2 <- compare(log, "plant_additive_vs_interaction", m_small, m_big, TRUE,
                "height ~ week + temp + (1 | plant_id)", "height ~ week * temp + (1 | plant_id)",
                "plant")
  m_small <- m_big
  m_big <- step(log, "fit_plant_slopes", lmer(height ~ week * temp + (week | plant_id), plant))
  c3 <- compare(log, "plant_intercept_vs_slopes_norefit", m_small, m_big, FALSE,
                "height ~ week * temp + (1 | plant_id)", "height ~ week * temp + (week | plant_id)",
                "plant")
  write_ref(list(
    description = paste("Likelihood-ratio tests anova(m_small, m_big) with lmerTest::lmer",
                        "REML fits; refit = TRUE refits both by ML first."),
    versions = versions,
    comparisons = list(c1, c2, c3),
    aux_warnings = if (length(log$warnings)) as.list(log$warnings) else NULL,
    errors = if (length(log$errors)) as.list(log$errors) else NULL,
    generated_by = "tests/references/make_references.R"
  ), "comparisons")
}

## -------------------------------------------------------- naive lm() --
if (wanted("lm_plant")) {
  cat("== lm_plant\n")
  plant <- get_data("plant")
  mod <- lm(height ~ week * temp, data = plant)
  s <- summary(mod)
  fs <- s$fstatistic
  write_ref(list(
    name = "lm_plant",
    data_file = "plant_growth.csv",
    data_path = "src/mixeff/data/plant_growth.csv",
    r_formula = "height ~ week * temp",
    factors = chr_vec(datasets$plant$factors),
    versions = versions,
    nobs = nobs(mod),
    coef_names = chr_vec(names(coef(mod))),
    coefficients = num_vec(coef(mod)),
    coef_table = df_rows(s$coefficients),
    vcov = mat_rows(vcov(mod)),
    sigma = s$sigma,
    df_residual = mod$df.residual,
    r_squared = s$r.squared,
    adj_r_squared = s$adj.r.squared,
    fstatistic = list(value = fs[["value"]], numdf = fs[["numdf"]], dendf = fs[["dendf"]],
                      p_value = pf(fs[["value"]], fs[["numdf"]], fs[["dendf"]],
                                   lower.tail = FALSE)),
    loglik = as.numeric(logLik(mod)),
    aic = AIC(mod),
    bic = BIC(mod),
    anova = df_rows(anova(mod)),
    summary_text = capture_text(print(s)),
    anova_text = capture_text(print(anova(mod))),
    generated_by = "tests/references/make_references.R"
  ), "lm_plant")
}

## ------------------------------------------------------------ report --
if (length(table_rows)) {
  tab <- do.call(rbind, table_rows)
  rownames(tab) <- NULL
  tab$objective <- sprintf("%.10f", tab$objective)
  tab$seconds <- sprintf("%.1f", tab$seconds)
  cat("\n")
  print(tab, right = FALSE)
}
cat("\nversions:", paste(names(versions), unlist(versions), sep = " ", collapse = "; "), "\n")
