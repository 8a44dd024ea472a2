//! French names and places for the synthetic data: family and given names as found in the Lyon area,
//! communes with their postal and INSEE codes, birth places in and out of France.

/// When a given name was in fashion: a patient born in 1935 is rarely called Kylian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// Born before 1960.
    Old,
    /// Born 1960–1989.
    Middle,
    /// Born 1990 or later.
    Young,
}

impl Era {
    /// The era of a birth year.
    pub fn of_year(year: i32) -> Self {
        match year {
            ..1960 => Self::Old,
            1960..1990 => Self::Middle,
            _ => Self::Young,
        }
    }
}

/// Family names: the most frequent in France, Lyon's regional names and those of its immigrations
/// (Italy, Spain, Portugal, Maghreb, Armenia, Vietnam, West Africa), with accents, particles,
/// apostrophes and compound names.
#[rustfmt::skip]
pub const FAMILY_NAMES: &[&str] = &[
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois", "Moreau", "Laurent", "Simon",
    "Michel", "Lefèvre", "Leroy", "Roux", "David", "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont",
    "Lambert", "Fontaine", "Rousseau", "Vincent", "Muller", "Lefèbvre", "Faure", "André", "Mercier", "Blanc",
    "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia", "Perrin", "Robin",
    "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu", "Gautier", "Masson", "Marchand", "Duval", "Denis",
    "Dumont", "Marie", "Lemaire", "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud", "Joly",
    "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez", "Gérard", "Roche", "Renard",
    "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron", "Picard", "Roger", "Fabre", "Aubert", "Lemoine",
    "Renaud", "Dumas", "Lacroix", "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet",
    "Rolland", "Leclercq", "Guillaume", "Lecomte", "Lopez", "Jean", "Dupuy", "Guillot", "Hubert", "Berger",
    "Carpentier", "Sanchez", "Dupuis", "Moulin", "Louis", "Deschamps", "Huet", "Vasseur", "Perez", "Boucher",
    "Fleury", "Royer", "Klein", "Jacquet", "Adam", "Paris", "Poirier", "Marty", "Aubry", "Guyot", "Carré",
    "Charles", "Renault", "Charpentier", "Ménard", "Maillard", "Baron", "Bertin", "Bailly", "Hervé", "Schneider",
    "Fernandez", "Le Gall", "Collet", "Léger", "Bouvier", "Julien", "Prévost", "Millet", "Perrot", "Daniel",
    "Le Roux", "Cousin", "Germain", "Breton", "Besson", "Langlois", "Rémy", "Le Goff", "Pelletier", "Lévêque",
    "Perrier", "Leblanc", "Barré", "Lebrun", "Marchal", "Weber", "Mallet", "Hamon", "Boulanger", "Jacob", "Monnier",
    "Michaud", "Rodriguez", "Guichard", "Gillet", "Étienne", "Grondin", "Poulain", "Tessier", "Chevallier",
    "Collin", "Chauvin", "Da Silva", "Bouchet", "Gay", "Lemaître", "Bénard", "Maréchal", "Humbert", "Reynaud",
    "Antoine", "Hoarau", "Perret", "Barthélémy", "Cordier", "Pichon", "Lejeune", "Gilbert", "Lamy", "Delaunay",
    "Pasquier", "Carlier", "Laporte",
    // Lyon and Rhône-Alpes.
    "Mérieux", "Chapuis", "Chatelain", "Jacquemet", "Bouvard", "Favre", "Vial", "Dumoulin", "Revol", "Guillermin",
    "Chambon", "Berthet", "Gonin", "Dussurgey", "Perrichon", "Bonnard", "Chavanne", "Poncet", "Ravier", "Vernay",
    "Mollard", "Bessenay", "Grange", "Rivoire", "Deléage", "Piegay", "Chazal", "Tardy", "Mathevet", "Saint-Martin",
    "Saint-Cyr", "Du Pasquier", "De La Roche", "Desgranges", "Champagnat", "Berliet", "Joannon", "Coquard",
    // Italian, Spanish and Portuguese.
    "Rossi", "Russo", "Ferrari", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo",
    "Conti", "De Luca", "Costa", "Giordano", "Mancini", "Lombardi", "Moretti", "Fernandes", "Gonçalves",
    "Rodrigues", "Pereira", "Ferreira", "Oliveira", "Santos", "Martins", "Sousa", "D'Almeida", "Carvalho", "Lopes",
    "Ribeiro", "Teixeira", "Gomes", "Pinto", "González", "Hernández", "Jiménez", "Moreno", "Muñoz", "Álvarez",
    "Romero", "Navarro", "Ruiz", "Díaz", "Ortega", "Gutiérrez",
    // Maghreb, Turkey and the Middle East.
    "Benali", "Bensaïd", "Belkacem", "Boukhari", "Haddad", "Mansouri", "Benamar", "Cherif", "Khelifi", "Amrani",
    "Bouzid", "Saïdi", "Meziane", "Hamidi", "Benyahia", "Zerrouki", "Djebbar", "Touati", "Ait Ahmed", "Ould Ali",
    "El Idrissi", "El Amrani", "Ben Youssef", "Boudjemaa", "Kaddour", "Lahlou", "Brahimi", "Ferhat", "Yilmaz",
    "Kaya", "Demir", "Şahin", "Çelik", "Öztürk",
    // Armenian, Vietnamese and sub-Saharan African.
    "Petrossian", "Manoukian", "Hovhannessian", "Aznavourian", "Kazarian", "Nguyen", "Tran", "Le", "Pham", "Hoang",
    "Vu", "Dang", "Diallo", "Traoré", "Diop", "Ndiaye", "Koné", "Coulibaly", "Camara", "Sow", "Mbappé", "Kouassi",
    "N'Diaye", "Mendy", "Fofana",
];

/// Girls' given names with the era they belong to.
#[rustfmt::skip]
pub const GIVEN_NAMES_F: &[(&str, Era)] = &[
    ("Marie", Era::Old), ("Jeanne", Era::Old), ("Françoise", Era::Old), ("Monique", Era::Old),
    ("Jacqueline", Era::Old), ("Colette", Era::Old), ("Simone", Era::Old), ("Denise", Era::Old),
    ("Paulette", Era::Old), ("Yvette", Era::Old), ("Germaine", Era::Old), ("Suzanne", Era::Old),
    ("Madeleine", Era::Old), ("Odette", Era::Old), ("Micheline", Era::Old), ("Josette", Era::Old),
    ("Marcelle", Era::Old), ("Lucienne", Era::Old), ("Andrée", Era::Old), ("Geneviève", Era::Old),
    ("Raymonde", Era::Old), ("Ginette", Era::Old), ("Nicole", Era::Old), ("Danielle", Era::Old),
    ("Éliane", Era::Old), ("Huguette", Era::Old), ("Christiane", Era::Old), ("Gisèle", Era::Old),
    ("Renée", Era::Old), ("Arlette", Era::Old), ("Marie-Thérèse", Era::Old), ("Marie-Louise", Era::Old),
    ("Janine", Era::Old), ("Thérèse", Era::Old), ("Bernadette", Era::Old), ("Michèle", Era::Old),
    ("Yvonne", Era::Old), ("Odile", Era::Old), ("Annie", Era::Old), ("Marie-Jeanne", Era::Old), ("Fatma", Era::Old),
    ("Rosa", Era::Old), ("Maria", Era::Old), ("Aïcha", Era::Old), ("Nathalie", Era::Middle),
    ("Isabelle", Era::Middle), ("Sylvie", Era::Middle), ("Catherine", Era::Middle), ("Valérie", Era::Middle),
    ("Sandrine", Era::Middle), ("Christine", Era::Middle), ("Véronique", Era::Middle), ("Sophie", Era::Middle),
    ("Stéphanie", Era::Middle), ("Laurence", Era::Middle), ("Corinne", Era::Middle), ("Patricia", Era::Middle),
    ("Martine", Era::Middle), ("Brigitte", Era::Middle), ("Céline", Era::Middle), ("Aurélie", Era::Middle),
    ("Virginie", Era::Middle), ("Karine", Era::Middle), ("Caroline", Era::Middle), ("Émilie", Era::Middle),
    ("Delphine", Era::Middle), ("Anne-Sophie", Era::Middle), ("Marie-Pierre", Era::Middle),
    ("Séverine", Era::Middle), ("Hélène", Era::Middle), ("Claire", Era::Middle), ("Agnès", Era::Middle),
    ("Élodie", Era::Middle), ("Audrey", Era::Middle), ("Julie", Era::Middle), ("Fatima", Era::Middle),
    ("Nadia", Era::Middle), ("Samira", Era::Middle), ("Malika", Era::Middle), ("Leïla", Era::Middle),
    ("Sabrina", Era::Middle), ("Mélanie", Era::Middle), ("Florence", Era::Middle), ("Béatrice", Era::Middle),
    ("Pascale", Era::Middle), ("Anne", Era::Middle), ("Marie-Christine", Era::Middle), ("Dominique", Era::Middle),
    ("Muriel", Era::Middle), ("Magali", Era::Middle), ("Carole", Era::Middle), ("Estelle", Era::Middle),
    ("Laetitia", Era::Middle), ("Vanessa", Era::Middle), ("Marie-Claire", Era::Middle), ("Anne-Laure", Era::Middle),
    ("Ana", Era::Middle), ("Thi Lan", Era::Middle), ("Aminata", Era::Middle), ("Karima", Era::Middle),
    ("Emma", Era::Young), ("Léa", Era::Young), ("Chloé", Era::Young), ("Manon", Era::Young),
    ("Camille", Era::Young), ("Inès", Era::Young), ("Jade", Era::Young), ("Louise", Era::Young),
    ("Lina", Era::Young), ("Zoé", Era::Young), ("Alice", Era::Young), ("Sarah", Era::Young), ("Léna", Era::Young),
    ("Lola", Era::Young), ("Juliette", Era::Young), ("Lucie", Era::Young), ("Anaïs", Era::Young),
    ("Clara", Era::Young), ("Mathilde", Era::Young), ("Océane", Era::Young), ("Pauline", Era::Young),
    ("Marine", Era::Young), ("Laura", Era::Young), ("Marion", Era::Young), ("Justine", Era::Young),
    ("Mélissa", Era::Young), ("Yasmine", Era::Young), ("Rose", Era::Young), ("Ambre", Era::Young),
    ("Mila", Era::Young), ("Anna", Era::Young), ("Romane", Era::Young), ("Eva", Era::Young), ("Maëlys", Era::Young),
    ("Charlotte", Era::Young), ("Élise", Era::Young), ("Margaux", Era::Young), ("Nour", Era::Young),
    ("Amira", Era::Young), ("Salomé", Era::Young), ("Louna", Era::Young), ("Agathe", Era::Young),
    ("Capucine", Era::Young), ("Maya", Era::Young), ("Lou", Era::Young), ("Victoire", Era::Young),
    ("Héloïse", Era::Young), ("Noémie", Era::Young), ("Marie-Lou", Era::Young), ("Lise-Marie", Era::Young),
    ("Kenza", Era::Young), ("Awa", Era::Young),
];

/// Boys' given names with the era they belong to.
#[rustfmt::skip]
pub const GIVEN_NAMES_M: &[(&str, Era)] = &[
    ("Jean", Era::Old), ("Pierre", Era::Old), ("Michel", Era::Old), ("André", Era::Old), ("Jacques", Era::Old),
    ("René", Era::Old), ("Louis", Era::Old), ("Marcel", Era::Old), ("Roger", Era::Old), ("Robert", Era::Old),
    ("Henri", Era::Old), ("Georges", Era::Old), ("Bernard", Era::Old), ("Claude", Era::Old), ("Paul", Era::Old),
    ("Raymond", Era::Old), ("Maurice", Era::Old), ("Gérard", Era::Old), ("Daniel", Era::Old), ("Roland", Era::Old),
    ("Lucien", Era::Old), ("Albert", Era::Old), ("Gilbert", Era::Old), ("Guy", Era::Old), ("Jean-Pierre", Era::Old),
    ("Jean-Claude", Era::Old), ("Jean-Louis", Era::Old), ("Jean-Paul", Era::Old), ("Jean-Marie", Era::Old),
    ("Alain", Era::Old), ("Yves", Era::Old), ("Francis", Era::Old), ("Antoine", Era::Old), ("Joseph", Era::Old),
    ("Fernand", Era::Old), ("Émile", Era::Old), ("Gaston", Era::Old), ("Serge", Era::Old), ("Armand", Era::Old),
    ("Léon", Era::Old), ("Marius", Era::Old), ("Edmond", Era::Old), ("Ahmed", Era::Old), ("Manuel", Era::Old),
    ("Giuseppe", Era::Old), ("Ali", Era::Old), ("Hovannès", Era::Old), ("Jean-Baptiste", Era::Old),
    ("Philippe", Era::Middle), ("Patrick", Era::Middle), ("Christophe", Era::Middle), ("Thierry", Era::Middle),
    ("Éric", Era::Middle), ("Pascal", Era::Middle), ("Laurent", Era::Middle), ("Stéphane", Era::Middle),
    ("Frédéric", Era::Middle), ("Olivier", Era::Middle), ("David", Era::Middle), ("Sébastien", Era::Middle),
    ("Nicolas", Era::Middle), ("Franck", Era::Middle), ("Didier", Era::Middle), ("Bruno", Era::Middle),
    ("Jérôme", Era::Middle), ("Vincent", Era::Middle), ("Cédric", Era::Middle), ("Fabrice", Era::Middle),
    ("Arnaud", Era::Middle), ("Jean-François", Era::Middle), ("Jean-Luc", Era::Middle), ("Hervé", Era::Middle),
    ("Mohamed", Era::Middle), ("Karim", Era::Middle), ("Rachid", Era::Middle), ("Mehdi", Era::Middle),
    ("Samir", Era::Middle), ("Ludovic", Era::Middle), ("Grégory", Era::Middle), ("Guillaume", Era::Middle),
    ("Julien", Era::Middle), ("Sylvain", Era::Middle), ("Emmanuel", Era::Middle), ("Xavier", Era::Middle),
    ("Benoît", Era::Middle), ("Lionel", Era::Middle), ("Yannick", Era::Middle), ("Damien", Era::Middle),
    ("Mickaël", Era::Middle), ("Anthony", Era::Middle), ("Jean-Marc", Era::Middle), ("François", Era::Middle),
    ("Denis", Era::Middle), ("Joël", Era::Middle), ("Gilles", Era::Middle), ("Marc", Era::Middle),
    ("Hakim", Era::Middle), ("Nordine", Era::Middle), ("Van Minh", Era::Middle), ("Moussa", Era::Middle),
    ("Lucas", Era::Young), ("Hugo", Era::Young), ("Gabriel", Era::Young), ("Arthur", Era::Young),
    ("Jules", Era::Young), ("Léo", Era::Young), ("Raphaël", Era::Young), ("Adam", Era::Young),
    ("Nathan", Era::Young), ("Ethan", Era::Young), ("Tom", Era::Young), ("Théo", Era::Young), ("Noah", Era::Young),
    ("Mathis", Era::Young), ("Enzo", Era::Young), ("Maël", Era::Young), ("Timéo", Era::Young),
    ("Sacha", Era::Young), ("Nolan", Era::Young), ("Axel", Era::Young), ("Clément", Era::Young),
    ("Maxime", Era::Young), ("Alexandre", Era::Young), ("Thomas", Era::Young), ("Quentin", Era::Young),
    ("Kevin", Era::Young), ("Romain", Era::Young), ("Florian", Era::Young), ("Valentin", Era::Young),
    ("Baptiste", Era::Young), ("Mathieu", Era::Young), ("Adrien", Era::Young), ("Yanis", Era::Young),
    ("Ilyès", Era::Young), ("Rayan", Era::Young), ("Ayoub", Era::Young), ("Amir", Era::Young), ("Noé", Era::Young),
    ("Aaron", Era::Young), ("Victor", Era::Young), ("Louka", Era::Young), ("Malo", Era::Young),
    ("Gaspard", Era::Young), ("Samuel", Era::Young), ("Élias", Era::Young), ("Ibrahim", Era::Young),
    ("Liam", Era::Young), ("Kylian", Era::Young), ("Jean-Baptiste", Era::Young), ("Pierre-Louis", Era::Young),
    ("Mamadou", Era::Young), ("Anis", Era::Young),
];

/// Given names of the staff and prescribers (working age, both sexes).
#[rustfmt::skip]
pub const WORKING_GIVEN_NAMES: &[&str] = &[
    "Claire", "Julie", "Sophie", "Nathalie", "Céline", "Aurélie", "Émilie", "Camille", "Laura", "Pauline", "Sarah",
    "Inès", "Marion", "Hélène", "Anne-Sophie", "Fatima", "Leïla", "Mélanie", "Manon", "Chloé", "Thomas", "Nicolas",
    "Julien", "Maxime", "Antoine", "Romain", "Karim", "Sébastien", "Olivier", "Mehdi", "Guillaume", "Jean-Marc",
    "Pierre", "François", "Hugo", "Mathieu", "David", "Laurent", "Yann", "Bruno",
];

/// A commune where patients live.
#[derive(Debug, Clone, Copy)]
pub struct Commune {
    /// Name as written on an address.
    pub city: &'static str,
    /// Postal code.
    pub postal_code: &'static str,
    /// INSEE code (the birth place code of people born there).
    pub insee: &'static str,
    /// Real street names of the commune.
    pub streets: &'static [&'static str],
}

const fn commune(
    city: &'static str,
    postal_code: &'static str,
    insee: &'static str,
    streets: &'static [&'static str],
) -> Commune {
    Commune {
        city,
        postal_code,
        insee,
        streets,
    }
}

/// Streets found in most communes of the Lyon area.
#[rustfmt::skip]
const COMMON_STREETS: &[&str] = &[
    "rue de la République", "avenue Jean Jaurès", "rue Victor Hugo", "place de la Mairie", "chemin des Vignes",
    "allée des Tilleuls", "rue Pasteur", "impasse des Lilas", "route de Lyon", "rue du Stade", "rue de l'Église",
    "avenue de Verdun", "rue du 8 Mai 1945", "rue Jean Moulin",
];

/// Communes of Lyon and its suburbs, each lab serving a few of them.
#[rustfmt::skip]
pub const COMMUNES: &[Commune] = &[
    commune("Lyon", "69001", "69381", &[
        "rue Paul Chenavard", "montée de la Grande-Côte", "rue d'Algérie", "quai Saint-Vincent", "rue Burdeau",
        "place Sathonay", "rue des Capucins",
    ]),
    commune("Lyon", "69002", "69382", &[
        "rue de la République", "rue Victor Hugo", "quai Gailleton", "rue Mercière", "cours Charlemagne",
        "rue Sainte-Hélène", "rue Auguste Comte",
    ]),
    commune("Lyon", "69003", "69383", &[
        "cours Gambetta", "rue Paul Bert", "avenue Félix Faure", "cours Lafayette", "rue Moncey", "rue Garibaldi",
        "rue de la Villette", "avenue Lacassagne",
    ]),
    commune("Lyon", "69004", "69384", &[
        "boulevard de la Croix-Rousse", "rue d'Austerlitz", "grande rue de la Croix-Rousse", "rue Hénon",
        "rue du Mail", "rue Dumenge",
    ]),
    commune("Lyon", "69005", "69385", &[
        "rue Saint-Jean", "avenue du Point-du-Jour", "rue Pierre Valdo", "montée du Chemin-Neuf", "rue Jeunet",
        "avenue Barthélemy Buyer",
    ]),
    commune("Lyon", "69006", "69386", &[
        "boulevard des Belges", "rue Vendôme", "cours Vitton", "rue Garibaldi", "avenue Maréchal Foch",
        "rue Tête d'Or", "rue Duguesclin",
    ]),
    commune("Lyon", "69007", "69387", &[
        "avenue Jean Jaurès", "rue de Gerland", "grande rue de la Guillotière", "rue de Marseille",
        "avenue Berthelot", "rue Chevreul", "rue Béchevelin",
    ]),
    commune("Lyon", "69008", "69388", &[
        "avenue des Frères Lumière", "route de Vienne", "boulevard des États-Unis", "rue Professeur Beauvisage",
        "avenue Paul Santy", "rue Marius Berliet", "avenue Général Frère",
    ]),
    commune("Lyon", "69009", "69389", &[
        "rue de Bourgogne", "avenue Sidoine Apollinaire", "grande rue de Vaise", "rue Marietton",
        "quai Paul Sédallian", "rue du Bourbonnais",
    ]),
    commune("Villeurbanne", "69100", "69266", &[
        "cours Émile Zola", "avenue Henri Barbusse", "rue Francis de Pressensé", "rue Léon Blum",
        "avenue Roger Salengro", "rue du 4 Août 1789", "cours Tolstoï", "rue Anatole France",
        "boulevard du 11 Novembre 1918",
    ]),
    commune("Vénissieux", "69200", "69259", &[
        "boulevard Marcel Sembat", "avenue Jean Jaurès", "rue Gaspard Picard", "avenue d'Oschatz", "rue Paul Bert",
        "boulevard Lénine", "avenue Marcel Houël",
    ]),
    commune("Bron", "69500", "69029", &[
        "avenue Franklin Roosevelt", "boulevard Pinel", "rue de la Pagère", "avenue Camille Rousset",
        "rue Guynemer", "avenue Pierre Brossolette",
    ]),
    commune("Caluire-et-Cuire", "69300", "69034", &[
        "avenue Général de Gaulle", "montée des Soldats", "rue Coste", "chemin de Wette-Fays",
        "avenue Élisée Reclus", "rue Jean Moulin",
    ]),
    commune("Vaulx-en-Velin", "69120", "69256", &[
        "avenue Gabriel Péri", "rue Émile Zola", "avenue Salvador Allende", "chemin du Grand Bois",
        "rue de la République", "avenue Georges Rougé",
    ]),
    commune("Saint-Priest", "69800", "69290", &[
        "rue Henri Maréchal", "boulevard Édouard Herriot", "route d'Heyrieux", "rue Aristide Briand",
        "avenue Jean Jaurès", "rue de la Cordière",
    ]),
    commune("Oullins-Pierre-Bénite", "69600", "69149", &[
        "Grande Rue", "rue de la République", "boulevard de l'Yzeron", "avenue Jean Jaurès", "rue Pierre Sémard",
        "rue du Perron",
    ]),
    commune("Décines-Charpieu", "69150", "69275", &[
        "avenue Jean Jaurès", "rue Émile Zola", "avenue Franklin Roosevelt", "rue Sully",
        "chemin de la Grande Allée", "rue Paul Bert",
    ]),
    commune("Rillieux-la-Pape", "69140", "69286", COMMON_STREETS),
    commune("Meyzieu", "69330", "69282", COMMON_STREETS),
    commune("Saint-Fons", "69190", "69199", COMMON_STREETS),
    commune("Chassieu", "69680", "69271", COMMON_STREETS),
    commune("Tassin-la-Demi-Lune", "69160", "69244", COMMON_STREETS),
    commune("Écully", "69130", "69081", COMMON_STREETS),
    commune("Sainte-Foy-lès-Lyon", "69110", "69202", COMMON_STREETS),
    commune("La Mulatière", "69350", "69142", COMMON_STREETS),
    commune("Saint-Genis-Laval", "69230", "69204", COMMON_STREETS),
    commune("Corbas", "69960", "69273", COMMON_STREETS),
    commune("Genas", "69740", "69277", COMMON_STREETS),
    commune("Mions", "69780", "69283", COMMON_STREETS),
];

/// The commune of a postal code in [`COMMUNES`].
pub fn commune_by_postal_code(postal_code: &str) -> Option<&'static Commune> {
    COMMUNES.iter().find(|commune| commune.postal_code == postal_code)
}

/// A proximity lab the demo network may have.
#[derive(Debug, Clone, Copy)]
pub struct LabSite {
    /// Lab code (`^[A-Z0-9][A-Z0-9-]{1,15}$`).
    pub code: &'static str,
    /// Lab name.
    pub name: &'static str,
    /// Postal codes where most of its patients live.
    pub home: &'static [&'static str],
    /// Neighbouring postal codes some of its patients come from.
    pub near: &'static [&'static str],
}

/// The central lab: in Lyon, the backup of every proximity lab.
pub const CENTRAL: LabSite = LabSite {
    code: "CENTRAL",
    name: "Laboratoire central LabAnalyse — Lyon",
    home: &[
        "69001", "69002", "69003", "69004", "69005", "69006", "69007", "69008", "69009",
    ],
    near: &["69100", "69160", "69130", "69110"],
};

/// The proximity labs, in the order `--proximity-labs` takes them.
pub const PROXIMITY: &[LabSite] = &[
    LabSite {
        code: "VILLEURBANNE",
        name: "LabAnalyse Villeurbanne",
        home: &["69100"],
        near: &["69006", "69003", "69120"],
    },
    LabSite {
        code: "VENISSIEUX",
        name: "LabAnalyse Vénissieux",
        home: &["69200"],
        near: &["69190", "69960", "69008"],
    },
    LabSite {
        code: "BRON",
        name: "LabAnalyse Bron",
        home: &["69500"],
        near: &["69680", "69008", "69800"],
    },
    LabSite {
        code: "CALUIRE",
        name: "LabAnalyse Caluire-et-Cuire",
        home: &["69300"],
        near: &["69140", "69004"],
    },
    LabSite {
        code: "VAULX",
        name: "LabAnalyse Vaulx-en-Velin",
        home: &["69120"],
        near: &["69100", "69150"],
    },
    LabSite {
        code: "SAINT-PRIEST",
        name: "LabAnalyse Saint-Priest",
        home: &["69800"],
        near: &["69780", "69960", "69500"],
    },
    LabSite {
        code: "OULLINS",
        name: "LabAnalyse Oullins",
        home: &["69600"],
        near: &["69350", "69230", "69110"],
    },
    LabSite {
        code: "DECINES",
        name: "LabAnalyse Décines-Charpieu",
        home: &["69150"],
        near: &["69330", "69740", "69680"],
    },
];

/// Rhône birth places other than the communes above (maternity hospitals of the department).
pub const RHONE_BIRTH_PLACES: &[&str] = &["69264", "69091", "69243", "69286", "69282"];

/// Birth places in other departments of metropolitan France and overseas (INSEE codes).
#[rustfmt::skip]
pub const OTHER_BIRTH_PLACES: &[&str] = &[
    "75107", "75112", "75114", "75115", "75118", "13201", "13205", "13208", "38185", "38544", "42218", "01053",
    "73065", "74010", "63113", "21231", "26362", "71270", "31555", "59350", "33063", "44109", "67482", "34172",
    "06088", "07186", "03190", "25056", "97209", "97120", "97411", "97302",
];

/// Birth places in Corsica (INSEE codes with 2A/2B).
pub const CORSICA_BIRTH_PLACES: &[&str] = &["2A004", "2B033", "2A247", "2B096", "2B050", "2A272"];

/// Countries of birth (`99` + INSEE country code).
#[rustfmt::skip]
pub const FOREIGN_BIRTH_PLACES: &[&str] = &[
    "99352", "99350", "99351", "99139", "99127", "99134", "99208", "99341", "99326", "99322", "99243", "99114",
    "99109", "99131", "99132", "99333", "99397", "99234", "99252", "99216", "99335", "99312", "99122", "99140",
];

/// Names of nursing homes (EHPAD) where home samplers often go.
#[rustfmt::skip]
pub const NURSING_HOMES: &[&str] = &[
    "EHPAD Les Tilleuls", "EHPAD Les Glycines", "Résidence Les Jardins de Saint-Jean", "EHPAD Le Val Fleuri",
    "Résidence autonomie Les Acacias", "EHPAD La Roseraie", "EHPAD Les Balcons du Rhône",
    "Résidence Les Marronniers",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_area_is_a_known_commune_and_codes_fit_the_schema() {
        for site in std::iter::once(&CENTRAL).chain(PROXIMITY) {
            for code in site.home.iter().chain(site.near) {
                assert!(commune_by_postal_code(code).is_some(), "{} in {}", code, site.code);
            }
            assert!(site.code.len() <= 16);
        }
        let place = |code: &str| {
            let bytes = code.as_bytes();
            bytes.len() == 5
                && bytes[0].is_ascii_digit()
                && (bytes[1].is_ascii_digit() || bytes[1] == b'A' || bytes[1] == b'B')
                && bytes[2..].iter().all(u8::is_ascii_digit)
        };
        let all = COMMUNES
            .iter()
            .map(|commune| commune.insee)
            .chain(RHONE_BIRTH_PLACES.iter().copied());
        for code in all
            .chain(OTHER_BIRTH_PLACES.iter().copied())
            .chain(CORSICA_BIRTH_PLACES.iter().copied())
        {
            assert!(place(code), "{code}");
        }
        assert!(FAMILY_NAMES.len() >= 300, "{}", FAMILY_NAMES.len());
        assert!(GIVEN_NAMES_F.len() + GIVEN_NAMES_M.len() >= 300);
    }
}
